{#-
    A phone number as digits without `+`, the form the warehouse keys numbers by
    (`checks.phone_number`, HLR `number_requested`). Strips the `+` of E.164 (`e164_format`) and
    common formatting characters; an empty result becomes null. Plain `replace` keeps it portable.
-#}
{% macro normalise_phone_number(expression) -%}
    {{ return(adapter.dispatch('normalise_phone_number', 'numberyo')(expression)) }}
{%- endmacro %}

{% macro default__normalise_phone_number(expression) -%}
    nullif(
        {%- for char in ['+', ' ', '-', '(', ')', '.'] %}replace({% endfor -%}
        trim({{ expression }})
        {%- for char in ['+', ' ', '-', '(', ')', '.'] %}, '{{ char }}', ''){% endfor -%},
        ''
    )
{%- endmacro %}
