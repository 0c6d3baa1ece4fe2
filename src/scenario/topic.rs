//! MQTT topic filters: validity, matching, and the filter that covers every topic a template renders.

use crate::scenario::template::Template;

/// Whether `filter` is a valid MQTT subscription filter (`+` a whole level, `#` only as the last level).
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    levels.iter().enumerate().all(|(i, l)| match *l {
        "#" => i == last,
        "+" => true,
        l => !l.contains(['+', '#']),
    })
}

/// Whether `topic` matches `filter` (topics starting with `$` are not matched by leading wildcards).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The filter that covers every rendering of a topic template: each level holding a placeholder
/// becomes `+`.
pub fn template_filter(t: &Template) -> String {
    t.as_str()
        .split('/')
        .map(|level| if level.contains('{') { "+" } else { level })
        .collect::<Vec<_>>()
        .join("/")
}

/// The filter that covers exactly one group's topics: `{group}` is the group's name, every other
/// placeholder level becomes `+`.
pub fn group_filter(t: &Template, group: &str) -> String {
    t.as_str()
        .split('/')
        .map(|level| {
            let literal = level.replace("{group}", group);
            if literal.contains('{') {
                "+".to_owned()
            } else {
                literal
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether subscription filter `f` receives every topic that filter `g` describes.
pub fn filter_covers(f: &str, g: &str) -> bool {
    let mut fl = f.split('/');
    let mut gl = g.split('/');
    loop {
        match (fl.next(), gl.next()) {
            (Some("#"), _) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b && b != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some topic matches both filters.
pub fn filters_intersect(f: &str, g: &str) -> bool {
    let mut fl = f.split('/');
    let mut gl = g.split('/');
    loop {
        match (fl.next(), gl.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_table() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/b", "$SYS/b", false),
            ("+/+/x", "a/b/x", true),
            ("a/b", "a/c", false),
            ("a/b/c", "a/b", false),
        ];
        for (f, t, want) in cases {
            assert_eq!(matches(f, t), want, "{f} vs {t}");
        }
        for (f, ok) in [
            ("a/#", true),
            ("a/#/b", false),
            ("a+/b", false),
            ("", false),
            ("+", true),
        ] {
            assert_eq!(valid_filter(f), ok, "{f}");
        }
    }

    #[test]
    fn cover_and_intersect_tables() {
        let cases = [
            // (f, g, covers, intersects)
            ("a/+/c", "a/+/c", true, true),
            ("a/#", "a/+/c", true, true),
            ("a/1/c", "a/+/c", false, true),
            ("a/+", "a/+/c", false, false),
            ("b/#", "a/+/c", false, false),
            ("+/+/+", "a/b/c", true, true),
            ("a/b/c", "a/b/c", true, true),
            ("a/+/c", "a/#", false, true),
        ];
        for (f, g, covers, meets) in cases {
            assert_eq!(filter_covers(f, g), covers, "{f} covers {g}");
            assert_eq!(filters_intersect(f, g), meets, "{f} meets {g}");
        }
    }

    #[test]
    fn template_filters_cover_renderings() {
        let t = Template::parse("plant/{group}/dev-{index}/telemetry").unwrap();
        assert_eq!(template_filter(&t), "plant/+/+/telemetry");
        assert_eq!(group_filter(&t, "cnc"), "plant/cnc/+/telemetry");
        let t = Template::parse("plant/{group}-{index}").unwrap();
        assert_eq!(group_filter(&t, "cnc"), "plant/+");
    }
}
