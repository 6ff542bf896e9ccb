{#-
    Fails for every combination of `combination_of_columns` that appears more than once: the
    composite-key check of dbt_utils, kept here so the project needs no package download.
-#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    {%- set columns = combination_of_columns | join(', ') %}
    select {{ columns }}, count(*) as duplicate_rows
    from {{ model }}
    group by {{ columns }}
    having count(*) > 1
{% endtest %}
