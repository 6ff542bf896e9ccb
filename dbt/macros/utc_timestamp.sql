{#-
    A UTC instant (`timestamp with time zone`, as `numberyo_provider/schema.py` defines every
    warehouse timestamp) as a plain `timestamp` holding UTC wall-clock time, the type dbt's
    cross-database macros (`dbt.type_timestamp()`) work with. An explicit `at time zone 'UTC'`
    rather than a bare cast, which would use the session's time zone.
-#}
{% macro utc_timestamp(expression) -%}
    {{ return(adapter.dispatch('utc_timestamp', 'numberyo')(expression)) }}
{%- endmacro %}

{% macro default__utc_timestamp(expression) -%}
    cast(({{ expression }} at time zone 'UTC') as {{ dbt.type_timestamp() }})
{%- endmacro %}
