//! A strict parser of the Prometheus text exposition format 0.0.4, for the
//! metrics tests: it refuses what Prometheus would refuse (bad names, bad
//! label syntax, unparsable values, a TYPE after its samples, a family split
//! in two, duplicate series) and checks histograms (cumulative buckets, a
//! `+Inf` bucket equal to `_count`).

use std::collections::{BTreeMap, HashMap, HashSet};

/// One sample: metric name, labels in order written, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name -> declared type.
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// The value of the series `name` with exactly these labels (any order).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<BTreeMap<_, _>>() == want
            })
            .map(|s| s.value)
    }
}

/// Label pairs in the order written.
type Labels = Vec<(String, String)>;

fn valid_metric_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse::<f64>().map_err(|_| format!("bad value `{v}`")),
    }
}

/// The family a sample name belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|t| t == "histogram" || t == "summary")
        {
            return base;
        }
    }
    name
}

fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    // `s` starts just after `{`.
    let mut labels = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without `=`")?;
        let name = rest[..eq].trim();
        if !valid_label_name(name) {
            return Err(format!("bad label name `{name}`"));
        }
        rest = rest[eq + 1..].strip_prefix('"').ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape in label value: {other:?}")),
                },
                Some((_, '\n')) => return Err("raw line feed in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        rest = &rest[end + 1..];
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected `,` or `}` after a label".into());
        }
    }
}

/// Parses `text`, or says what is wrong and on which line.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut exp = Exposition::default();
    let mut seen_series = HashSet::new();
    let mut finished_families: HashSet<String> = HashSet::new();
    let mut current_family: Option<String> = None;
    let mut helped = HashSet::new();
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the exposition must end with a line feed".into());
    }
    for (i, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: `{line}`", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match parts.next() {
                Some("HELP") => {
                    let name = parts.next().ok_or_else(|| at("HELP without a name".into()))?;
                    if !valid_metric_name(name) || !helped.insert(name.to_string()) {
                        return Err(at("bad or repeated HELP".into()));
                    }
                }
                Some("TYPE") => {
                    let name = parts.next().ok_or_else(|| at("TYPE without a name".into()))?;
                    let kind = parts.next().ok_or_else(|| at("TYPE without a type".into()))?;
                    if !valid_metric_name(name) {
                        return Err(at("bad metric name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type `{kind}`")));
                    }
                    if exp.types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(at("second TYPE for one metric".into()));
                    }
                    if finished_families.contains(name) || current_family.as_deref() == Some(name) {
                        return Err(at("TYPE after the metric's samples".into()));
                    }
                }
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(at(format!("bad metric name `{name}`")));
        }
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(after) => parse_labels(after).map_err(at)?,
            None => (Vec::new(), &line[name_end..]),
        };
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().ok_or_else(|| at("no value".into()))?).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| at(format!("bad timestamp `{ts}`")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing text".into()));
        }
        let family = family_of(name, &exp.types).to_string();
        if current_family.as_deref() != Some(family.as_str()) {
            if finished_families.contains(&family) {
                return Err(at(format!("samples of `{family}` are not together")));
            }
            if let Some(prev) = current_family.replace(family.clone()) {
                finished_families.insert(prev);
            }
        }
        let mut key: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        key.sort();
        if !seen_series.insert(format!("{name}{{{}}}", key.join(","))) {
            return Err(at("duplicate series".into()));
        }
        exp.samples.push(Sample { name: name.to_string(), labels, value });
    }
    check_histograms(&exp)?;
    Ok(exp)
}

fn check_histograms(exp: &Exposition) -> Result<(), String> {
    for (family, kind) in &exp.types {
        if kind != "histogram" {
            continue;
        }
        // Group buckets by their labels other than `le`.
        let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for s in exp.samples.iter().filter(|s| s.name == format!("{family}_bucket")) {
            let le = s.labels.iter().find(|(k, _)| k == "le").ok_or(format!("{family}_bucket without `le`"))?;
            let bound = parse_value(&le.1)?;
            let mut rest: Vec<_> = s.labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            rest.sort();
            groups.entry(rest).or_default().push((bound, s.value));
        }
        for (labels, buckets) in groups {
            let mut prev = (f64::NEG_INFINITY, 0.0);
            for &(bound, count) in &buckets {
                if bound <= prev.0 || count < prev.1 {
                    return Err(format!("{family}{labels:?}: buckets not increasing and cumulative"));
                }
                prev = (bound, count);
            }
            if prev.0 != f64::INFINITY {
                return Err(format!("{family}{labels:?}: no `+Inf` bucket"));
            }
            let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let count = exp.value(&format!("{family}_count"), &pairs).ok_or(format!("{family}: no _count"))?;
            exp.value(&format!("{family}_sum"), &pairs).ok_or(format!("{family}: no _sum"))?;
            if count != prev.1 {
                return Err(format!("{family}{labels:?}: _count {count} differs from the +Inf bucket {}", prev.1));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_and_refuses_invalid() {
        let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"q\\\"\"} 3\n# TYPE h histogram\n\
                  h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
        let e = parse(ok).unwrap();
        assert_eq!(e.value("a_total", &[("l", "q\"")]), Some(3.0));
        for bad in [
            "a b\n",
            "1a 2\n",
            "a{l=x} 1\n",
            "a 1\nb 1\na 2\n",
            "a 1\na 1\n",
            "a 1\n# TYPE a counter\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 2\n",
            "a 1",
        ] {
            assert!(parse(bad).is_err(), "should refuse {bad:?}");
        }
    }
}
