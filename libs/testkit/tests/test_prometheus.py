"""Reading metric names out of PromQL and out of a /metrics page (pure)."""

from __future__ import annotations

from tollgate_testkit.prometheus import exported_names, metric_names, variable_expr


def test_selectors_aggregations_and_operators() -> None:
    """Names come out; functions, keywords, labels, ranges and variables do not."""
    expr = (
        'sum by (namespace, route) (rate(a_total{status=~"5..", job=~"$job"}[$__rate_interval]))'
        " / on (namespace) group_left sum(rate(b_total[5m])) > 0.05"
        ' unless histogram_quantile(0.99, sum by (le) (rate(c_bucket{x="y{z}"}[1m]))) > 1e3'
        " and time() - d_seconds offset 5m > bool 300"
    )
    assert metric_names(expr) == {"a_total", "b_total", "c_bucket", "d_seconds"}


def test_a_bare_name_and_a_label_values_query() -> None:
    """A lone series name is one; label_values() reads its expression, not its label."""
    assert metric_names("tollgate_notifier_lag") == {"tollgate_notifier_lag"}
    query = 'label_values(up{namespace=~"$namespace"}, job)'
    assert metric_names(variable_expr(query)) == {"up"}


def test_exported_names_include_declared_families() -> None:
    """A family with no sample yet still declares its series names, with the type's suffixes."""
    text = (
        "# HELP r_total Requests.\n# TYPE r_total counter\n"
        "# HELP l_seconds Latency.\n# TYPE l_seconds histogram\n"
        "# HELP g Gauge.\n# TYPE g gauge\ng 1.0\n"
    )
    assert exported_names(text) == {
        "r_total",
        "l_seconds_bucket",
        "l_seconds_sum",
        "l_seconds_count",
        "g",
    }
