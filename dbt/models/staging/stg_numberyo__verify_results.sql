-- One row per Verify result, renamed and typed; the number normalised to digits without `+`.
select
    check_id,
    result_index,
    {{ normalise_phone_number('e164_format') }} as phone_number,
    e164_format,
    valid_number,
    number_carrier,
    {{ utc_timestamp('created_at') }} as created_at,
    extra,
    {{ utc_timestamp('_loaded_at') }} as loaded_at,
    _load_id as load_id
from {{ source('numberyo', 'verify_results') }}
