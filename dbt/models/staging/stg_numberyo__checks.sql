-- One row per check, renamed and typed; no filtering, no business logic.
select
    check_id,
    type as check_type,
    source as check_source,
    user_cost,
    {{ utc_timestamp('created_at') }} as created_at,
    {{ normalise_phone_number('phone_number') }} as phone_number,
    extra,
    {{ utc_timestamp('_loaded_at') }} as loaded_at,
    _load_id as load_id
from {{ source('numberyo', 'checks') }}
