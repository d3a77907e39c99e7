-- Partitioned scoring (a Dask cluster shares one backlog): which slice of the backlog a
-- run scored, as "i/n"; null for a run over the whole backlog. A new run marks only the
-- stale runs of its own slice as failed, so parallel partitions never fail each other.
alter table score_runs add column partition_label text;
