"""Task tags with a global concurrency limit: defined once here, carried by the tasks in
``tasks/``, created as limits on the server by ``deployments.registry.ensure_tag_concurrency``.

A task carrying one of these never runs twice at once, whichever deployment or flow run
(``nightly/chain`` included) it belongs to.
"""

from __future__ import annotations

CRAWL_SLOT_TAG = "crawl-slot"  # tasks.crawl.crawl_portal
TRAIN_SLOT_TAG = "train-slot"  # tasks.train.train_model
TAG_CONCURRENCY = {CRAWL_SLOT_TAG: 1, TRAIN_SLOT_TAG: 1}
