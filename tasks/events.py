"""The project's Prefect event names and the resource ids and labels triggers match on: defined
once here, emitted by the tasks and flows, matched by the triggers in ``deployments.registry``.
The Prefect server's own flow-run state events the triggers listen to are named here too."""

from __future__ import annotations

# emitted by tasks.cases.announce_normalized; the train deployment triggers on it when the
# resource's TRAINING_DUE_LABEL is "true"
NORMALIZED_EVENT = "hscode.cases.normalized"
TRAINING_DUE_LABEL = "hscode.training.due"
CASES_RESOURCE = "hscode.cases"
# emitted by ``hscode tariff load --current`` / ``hscode tariff current`` when the current
# tariff edition changes (app.cli_tariff.announce_current_edition): the champion learned
# another edition's codes, so the train deployment triggers on it (TRAINING_DUE_LABEL "true")
TARIFF_CHANGED_EVENT = "hscode.tariff.current-changed"
TARIFF_RESOURCE = "hscode.tariff"
# emitted by tasks.train.announce_promotion for the resource f"{MODEL_RESOURCE}.{version}";
# the score deployment re-scores on it
PROMOTED_EVENT = "hscode.model.promoted"
MODEL_RESOURCE = "hscode.model"
MODEL_VERSION_LABEL = "hscode.model.version"
# emitted by tasks.live.publish_live_accuracy after each scoring run for the resource
# f"{LIVE_RESOURCE}.{version}"; the alert/live-accuracy deployment triggers on it when
# LIVE_LOW_LABEL is "true" (live top-1 over the last N decisions below the floor)
LIVE_ACCURACY_EVENT = "hscode.live-accuracy.measured"
LIVE_RESOURCE = "hscode.live-accuracy"
LIVE_LOW_LABEL = "hscode.live-accuracy.low"
# emitted by flows.alert for a failed or crashed run, resource f"{RUN_RESOURCE}.{run id}"
# (for further automations)
FAILED_EVENT = "hscode.run.failed"
RUN_RESOURCE = "hscode.run"

# emitted by the Prefect server when a flow run changes state
FLOW_RUN_COMPLETED = "prefect.flow-run.Completed"
FLOW_RUN_FAILED = "prefect.flow-run.Failed"
FLOW_RUN_CRASHED = "prefect.flow-run.Crashed"
