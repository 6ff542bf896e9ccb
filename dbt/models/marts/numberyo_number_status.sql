-- The latest known status of every phone number: one row per number, from its newest check with
-- results (HLR or Verify), plus the network facts only HLR gives (reachable, ported, country) from
-- its newest HLR check, and how often it was checked.

with checks as (

    select * from {{ ref('stg_numberyo__checks') }}

),

results as (

    select
        check_id,
        result_index,
        phone_number,
        valid_number,
        operator_name,
        original_operator_name,
        reachable,
        ported,
        country_code,
        country_name
    from {{ ref('stg_numberyo__hlr_results') }}

    union all

    select
        check_id,
        result_index,
        phone_number,
        valid_number,
        number_carrier as operator_name,
        cast(null as {{ dbt.type_string() }}) as original_operator_name,
        cast(null as {{ dbt.type_boolean() }}) as reachable,
        cast(null as {{ dbt.type_boolean() }}) as ported,
        cast(null as {{ dbt.type_int() }}) as country_code,
        cast(null as {{ dbt.type_string() }}) as country_name
    from {{ ref('stg_numberyo__verify_results') }}

),

-- The number a check was about: the one the account asked for, else the one the results name.
check_results as (

    select
        coalesce(checks.phone_number, results.phone_number) as phone_number,
        checks.check_id,
        checks.check_type,
        checks.created_at as checked_at,
        results.valid_number,
        results.operator_name,
        results.original_operator_name,
        results.reachable,
        results.ported,
        results.country_code,
        results.country_name,
        row_number() over (
            partition by checks.check_id, coalesce(checks.phone_number, results.phone_number)
            order by results.result_index
        ) as result_rank
    from checks
    inner join results
        on results.check_id = checks.check_id

),

-- One row per (check, number): a check counts once even if it returned several results.
number_checks as (

    select
        *,
        row_number() over (
            partition by phone_number order by checked_at desc, check_id desc
        ) as recency_rank,
        row_number() over (
            partition by phone_number, check_type order by checked_at desc, check_id desc
        ) as recency_rank_in_type
    from check_results
    where result_rank = 1
        and phone_number is not null

),

counts as (

    select
        phone_number,
        count(*) as check_count,
        count(case when check_type = 'HLR' then 1 end) as hlr_check_count,
        count(case when check_type = 'Verify' then 1 end) as verify_check_count,
        min(checked_at) as first_checked_at,
        max(case when check_type = 'HLR' then checked_at end) as last_hlr_checked_at,
        max(case when check_type = 'Verify' then checked_at end) as last_verify_checked_at
    from number_checks
    group by phone_number

),

latest as (

    select * from number_checks where recency_rank = 1

),

latest_hlr as (

    select * from number_checks where check_type = 'HLR' and recency_rank_in_type = 1

)

select
    latest.phone_number,
    latest.checked_at as last_checked_at,
    latest.check_id as last_check_id,
    latest.check_type as last_check_type,
    latest.valid_number,
    latest.operator_name,
    latest_hlr.reachable,
    latest_hlr.ported,
    latest_hlr.original_operator_name,
    latest_hlr.country_code,
    latest_hlr.country_name,
    latest_hlr.check_id as last_hlr_check_id,
    counts.last_hlr_checked_at,
    counts.last_verify_checked_at,
    counts.first_checked_at,
    counts.check_count,
    counts.hlr_check_count,
    counts.verify_check_count
from latest
inner join counts
    on counts.phone_number = latest.phone_number
left join latest_hlr
    on latest_hlr.phone_number = latest.phone_number
