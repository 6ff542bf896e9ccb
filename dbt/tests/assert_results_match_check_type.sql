-- Results must sit in the table of their check's type: HLR results under HLR checks, Verify
-- results under Verify checks. Returns the rows that do not.
select 'hlr_results' as results_table, results.check_id, checks.check_type
from {{ ref('stg_numberyo__hlr_results') }} as results
inner join {{ ref('stg_numberyo__checks') }} as checks
    on checks.check_id = results.check_id
where checks.check_type <> 'HLR'

union all

select 'verify_results' as results_table, results.check_id, checks.check_type
from {{ ref('stg_numberyo__verify_results') }} as results
inner join {{ ref('stg_numberyo__checks') }} as checks
    on checks.check_id = results.check_id
where checks.check_type <> 'Verify'
