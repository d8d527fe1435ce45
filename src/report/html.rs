//! The page: the template (`report.html`, inline script and style) with the report's
//! data embedded as JSON.

use super::Report;

/// The page's template; `/*REPORT_DATA*/null` is replaced by the data.
pub const TEMPLATE: &str = include_str!("report.html");
const SLOT: &str = "/*REPORT_DATA*/null";

/// The whole page for `report`.
pub fn render(report: &Report) -> String {
    let json = serde_json::to_string(report).expect("a report serializes");
    TEMPLATE.replacen(SLOT, &script_safe(&json), 1)
}

/// JSON made safe inside a `<script>` element: `<` only occurs inside JSON strings,
/// where `\u003c` means the same, so no `</script>` or `<!--` can end or change the
/// element. U+2028 and U+2029 are escaped too (old parsers end lines there).
pub fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_script_end_tag_survives_embedding() {
        let json =
            serde_json::to_string(&serde_json::json!({"detail": "</script><script>alert(1)"}))
                .unwrap();
        let safe = script_safe(&json);
        assert!(!safe.contains("</"), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["detail"], "</script><script>alert(1)");
    }

    #[test]
    fn the_template_has_one_data_slot_and_no_remote_resources() {
        assert_eq!(TEMPLATE.matches(SLOT).count(), 1);
        for remote in [
            "<script src",
            "<link",
            "@import",
            "url(",
            "fetch(",
            "XMLHttpRequest",
        ] {
            assert!(
                !TEMPLATE.contains(remote),
                "the page must not load anything: {remote}"
            );
        }
    }
}
