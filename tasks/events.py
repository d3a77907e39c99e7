"""The project's Prefect event names and the resource ids and labels triggers match on: defined
once here, emitted by the tasks and flows, matched by the triggers in ``deployments.registry``.
The Prefect server's own flow-run state events the triggers listen to are named here too."""

from __future__ import annotations

# emitted by tasks.cases.announce_normalized; the train deployment triggers on it when the
# resource's TRAINING_DUE_LABEL is "true"
NORMALIZED_EVENT = "hscode.cases.normalized"
TRAINING_DUE_LABEL = "hscode.training.due"
CASES_RESOURCE = "hscode.cases"
# emitted by tasks.train.announce_promotion for the resource f"{MODEL_RESOURCE}.{version}";
# the score deployment re-scores on it
PROMOTED_EVENT = "hscode.model.promoted"
MODEL_RESOURCE = "hscode.model"
MODEL_VERSION_LABEL = "hscode.model.version"
# emitted by flows.alert for a failed or crashed run, resource f"{RUN_RESOURCE}.{run id}"
# (for further automations)
FAILED_EVENT = "hscode.run.failed"
RUN_RESOURCE = "hscode.run"

# emitted by the Prefect server when a flow run changes state
FLOW_RUN_COMPLETED = "prefect.flow-run.Completed"
FLOW_RUN_FAILED = "prefect.flow-run.Failed"
FLOW_RUN_CRASHED = "prefect.flow-run.Crashed"
