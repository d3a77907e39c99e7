"""The project's Prefect event names and the resource labels triggers match on: defined once
here, emitted by the tasks and flows, matched by the triggers in ``deployments.registry``."""

from __future__ import annotations

# emitted by tasks.cases.announce_normalized; the train deployment triggers on it when the
# resource's TRAINING_DUE_LABEL is "true"
NORMALIZED_EVENT = "hscode.cases.normalized"
TRAINING_DUE_LABEL = "hscode.training.due"
CASES_RESOURCE = "hscode.cases"
# emitted by tasks.train.announce_promotion; the score deployment re-scores on it
PROMOTED_EVENT = "hscode.model.promoted"
# emitted by flows.alert for a failed or crashed run (for further automations)
FAILED_EVENT = "hscode.run.failed"
