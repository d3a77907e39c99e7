-- Reject reason codes: every rejection carries a stable code (hscode.rejects.RejectReason:
-- empty_key, empty_title, oversize_text, image_corrupt, ...) beside its message, in its own
-- column, so analysts count by code and never parse the message (which is for people and
-- may change wording). intake_rejects.reason stays the message; intake_rejects.reason_code
-- is the code, written by hscode.intake. requests.reject_code is the scorer's code beside
-- requests.reject_reason. Rows written before this migration get the code their message
-- maps to (the messages hscode.intake and hscode.scoring wrote until now), else 'unknown'.
-- The views append the new columns ("create or replace view" may only append, and keeps
-- the grants).

alter table intake_rejects add column reason_code text not null default 'unknown';

-- Messages of rows read from a file start with their place: "line 3: ", "lines 3-5: ",
-- "row 7: ". A broken JSON line names its line the same way ("line 2: invalid JSON (...)").
update intake_rejects ir
   set reason_code = case
           when x.m ~ '^missing request_id' then 'empty_key'
           when x.m ~ '^request_id too long' then 'key_too_long'
           when x.m ~ '^empty title' then 'empty_title'
           when x.m ~ '^text too long' then 'oversize_text'
           when x.m ~ '^image too large' then 'image_too_large'
           when x.m ~ '^image path outside' then 'image_path_outside'
           when x.m ~ '^unreadable image: .* not found \(or not a file\)$' then 'image_missing'
           when x.m ~ '^unreadable image: path .* unusable \(' then 'image_path_bad'
           when x.m ~ '^(unreadable image|image must be bytes)' then 'image_corrupt'
           when x.m ~ '^(invalid JSON|not a JSON object|row is not a record)' then 'unreadable_row'
           else 'unknown'
       end
  from (select reject_id,
               regexp_replace(reason, '^(lines? [0-9]+(-[0-9]+)?|row [0-9]+): ', '') as m
          from intake_rejects) x
 where x.reject_id = ir.reject_id;

create index intake_rejects_reason_code_idx on intake_rejects (reason_code);

alter table requests add column reject_code text;

update requests
   set reject_code = case
           when reject_reason ~ '^empty title' then 'empty_title'
           when reject_reason ~ '^text too long' then 'oversize_text'
           when reject_reason ~ '^image too large' then 'image_too_large'
           when reject_reason ~ '^unreadable image' then 'image_corrupt'
           when reject_reason ~ '^model error' then 'model_error'
           else 'unknown'
       end
 where status = 'rejected';

create or replace view intake_rejections as
select reject_id, request_id, source, reason, rejected_at, reason_code from intake_rejects;

-- As in 004, with reject_code (the scorer's or the intake's code) appended.
create or replace view request_overview as
select request_id, received_at, title, description, image is not null as has_image, source,
       status, reject_reason, scored_at,
       case when status = 'rejected' then 'scorer' end as rejected_by,
       reject_code
  from requests
union all
select latest.request_id, latest.rejected_at, latest.title, latest.description,
       latest.has_image, latest.source, 'rejected', latest.reason, null::timestamptz,
       'intake', latest.reason_code
  from (
        select distinct on (ir.request_id, case when ir.request_id is null then ir.reject_id end)
               ir.request_id,
               ir.rejected_at,
               coalesce(ir.row_data ->> 'title', ir.row_data ->> 'name',
                        ir.row_data ->> 'product_name', ir.row_data ->> '품명') as title,
               coalesce(ir.row_data ->> 'description', ir.row_data ->> 'desc',
                        ir.row_data ->> '물품설명') as description,
               coalesce(jsonb_strip_nulls(ir.row_data)
                        ?| array['image', 'image_bytes', 'image_path', 'image_file',
                                 'image_base64', 'image_b64'], false) as has_image,
               ir.source,
               ir.reason,
               ir.reason_code
          from intake_rejects ir
         where ir.request_id is null
            or not exists (select 1 from requests r where r.request_id = ir.request_id)
         order by ir.request_id, case when ir.request_id is null then ir.reject_id end,
                  ir.rejected_at desc, ir.reject_id desc
       ) latest;
