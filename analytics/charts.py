"""Dashboard charts drawn by pygal as inline SVG: no JavaScript, no CDN, works offline."""

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    font_family="system-ui, sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
    title_font_size=14,
    colors=("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2"),
)


def _without_scripts(root):
    """pygal always inlines a config <script> for its optional tooltips; the page works without it."""
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag == "script" or str(child.tag).endswith("}script"):
                parent.remove(child)
    return root


COMMON = {
    "style": STYLE,
    "js": [],  # pygal's tooltips load a script from a CDN; the charts read fine without it.
    "disable_xml_declaration": True,
    "width": 900,
    "height": 340,
    "legend_at_bottom": True,
    "x_label_rotation": 30,
    "truncate_label": -1,
}


def _render(chart) -> SafeString:
    chart.add_xml_filter(_without_scripts)
    # pygal builds the SVG with an XML library, so labels and titles are escaped.
    return mark_safe(chart.render(is_unicode=True))


def line_chart(*, title: str, labels: list[str], series: dict[str, list], y_title: str = "") -> SafeString:
    chart = pygal.Line(title=title, y_title=y_title, show_minor_x_labels=len(labels) <= 31, **COMMON)
    chart.x_labels = labels
    chart.x_labels_major = labels[:: max(1, len(labels) // 10)]
    for name, values in series.items():
        chart.add(name, values, allow_interruptions=True)
    return _render(chart)


def bar_chart(*, title: str, labels: list[str], series: dict[str, list], stacked: bool = False) -> SafeString:
    chart_class = pygal.StackedBar if stacked else pygal.Bar
    chart = chart_class(title=title, **COMMON)
    chart.x_labels = labels
    for name, values in series.items():
        chart.add(name, values)
    return _render(chart)


def build_dashboard_charts(data) -> list[dict]:
    """Each chart with its SVG and the same numbers as a table (for screen readers and exports)."""
    labels = [day.strftime("%m-%d") for day in data.days]
    iso_days = [day.isoformat() for day in data.days]

    def by_day(series: dict[str, list]) -> dict:
        return {
            "columns": ["day", *series],
            "rows": [[day, *values] for day, *values in zip(iso_days, *series.values(), strict=True)],
        }

    charts = [
        {
            "id": "active-users",
            "title": "Active users (DAU / WAU / MAU)",
            "svg": line_chart(title="Active users", labels=labels, series=data.active_users, y_title="users"),
            "table": by_day(data.active_users),
        },
        {
            "id": "signups",
            "title": "Signups and paid conversions per day",
            "svg": bar_chart(
                title="Signups and paid conversions",
                labels=labels,
                series={"signups": data.signups, "paid conversions": data.paid_conversions},
            ),
            "table": by_day({"signups": data.signups, "paid conversions": data.paid_conversions}),
        },
    ]
    feature_names = list(data.features_by_tier)
    tier_series = {tier: [data.features_by_tier[name].get(tier, 0) for name in feature_names] for tier in data.tiers}
    charts.append(
        {
            "id": "features",
            "title": "Top features by tier",
            "svg": bar_chart(title="Top features by tier", labels=feature_names, series=tier_series, stacked=True),
            "table": {
                "columns": ["event", *data.tiers],
                "rows": [
                    [name, *(tier_series[tier][i] for tier in data.tiers)] for i, name in enumerate(feature_names)
                ],
            },
        }
    )
    for name, percentiles in data.metric_percentiles.items():
        charts.append(
            {
                "id": f"metric-{name}",
                "title": f"{name} percentiles (ms)",
                "svg": line_chart(title=name, labels=labels, series=percentiles, y_title="ms"),
                "table": by_day(percentiles),
            }
        )
    return charts
