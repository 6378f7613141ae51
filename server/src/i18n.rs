//! Messages in the reader's language: the Fluent catalogues under `server/locales/` (zh-CN and
//! en, embedded in the binary), the choice of language for a request, and the localised text
//! of an error.
//!
//! A request's language is its `Accept-Language` negotiated against the catalogues, else the
//! site's default (`site.language`). [`scope`] makes it the current language while the request
//! is answered, so that an [`ApiError`](crate::error::ApiError) turned into a response anywhere
//! below speaks it without every layer passing it along. The error `code` never changes with
//! the language.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use gridline_sync::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use unic_langid::LanguageIdentifier;

/// A language the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lang {
    #[serde(rename = "zh-CN")]
    ZhCn,
    #[serde(rename = "en")]
    En,
}

/// The catalogue of each language, in [`Lang::ALL`] order.
const SOURCES: [&str; 2] = [
    include_str!("../locales/zh-CN/gridline.ftl"),
    include_str!("../locales/en/gridline.ftl"),
];

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::ZhCn, Lang::En];

    /// The BCP 47 tag (`Content-Language`, the settings, the language switch).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::ZhCn => "zh-CN",
            Lang::En => "en",
        }
    }

    fn index(self) -> usize {
        match self {
            Lang::ZhCn => 0,
            Lang::En => 1,
        }
    }

    /// A tag as written in a setting or a query (`zh-CN`, `zh`, `en`, `en-GB`...): the language
    /// it names, if the server speaks it.
    pub fn parse(tag: &str) -> Option<Lang> {
        let id: LanguageIdentifier = tag.trim().parse().ok()?;
        match id.language.as_str() {
            "zh" => Some(Lang::ZhCn),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language for a request: the best match of its `Accept-Language` header among those
    /// the server speaks (any Chinese tag reads as zh-CN, any English one as en), else
    /// `default`.
    pub fn negotiate(accept_language: Option<&str>, default: Lang) -> Lang {
        // The tags in the client's order of preference (by quality); the first whose language
        // has a catalogue wins, so `zh-Hans-CN`, `zh-TW` or `en-US` find theirs.
        accept_language
            .map(accept_language::parse)
            .unwrap_or_default()
            .iter()
            .find_map(|tag| Lang::parse(tag))
            .unwrap_or(default)
    }

    fn id(self) -> LanguageIdentifier {
        self.tag().parse().expect("a valid language tag")
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.tag())
    }
}

fn bundles() -> &'static [FluentBundle<FluentResource>; 2] {
    static BUNDLES: OnceLock<[FluentBundle<FluentResource>; 2]> = OnceLock::new();
    BUNDLES.get_or_init(|| Lang::ALL.map(|lang| bundle(lang, SOURCES[lang.index()])))
}

fn bundle(lang: Lang, source: &str) -> FluentBundle<FluentResource> {
    // The catalogues are part of the binary and checked by the tests below: a syntax error is
    // a build fault, not something a request could cause.
    let resource = FluentResource::try_new(source.to_owned())
        .unwrap_or_else(|(_, errors)| panic!("{} catalogue: {errors:?}", lang.tag()));
    let mut bundle = FluentBundle::new_concurrent(vec![lang.id()]);
    // No Unicode isolation marks around arguments: the texts go into JSON, CSV and XLSX,
    // where the marks would be stray characters.
    bundle.set_use_isolating(false);
    bundle
        .add_resource(resource)
        .unwrap_or_else(|errors| panic!("{} catalogue: {errors:?}", lang.tag()));
    bundle
}

/// The text of `key` in `lang`, with `args` filled in; `None` if the catalogue has no such key.
pub fn lookup(lang: Lang, key: &str, args: &[(&str, &str)]) -> Option<String> {
    let bundle = &bundles()[lang.index()];
    let pattern = bundle.get_message(key)?.value()?;
    let mut fluent_args = FluentArgs::new();
    for (name, value) in args {
        fluent_args.set(*name, *value);
    }
    let mut errors = Vec::new();
    let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
    Some(text.into_owned())
}

/// The text of `key` in `lang`; the key itself if the catalogue lacks it (the completeness
/// tests keep that from happening for the keys the code uses).
pub fn text(lang: Lang, key: &str) -> String {
    lookup(lang, key, &[]).unwrap_or_else(|| key.to_owned())
}

/// The name of a value of a closed set (`state`, `source`, `role`, `severity`, `entry`) in
/// `lang`, or the value itself when the catalogue has no name for it.
pub fn name(lang: Lang, set: &str, value: &str) -> String {
    lookup(lang, &format!("{set}-{value}"), &[]).unwrap_or_else(|| value.to_owned())
}

/// The message of an error with `code` for a reader of `lang`. English keeps `english`, the
/// message written where the error arose (it names the particular field, value or limit);
/// other languages get the catalogue's text for the code, naming the field at fault when
/// `details.path` gives one.
pub fn error_message(lang: Lang, code: ErrorCode, english: &str, details: &Value) -> String {
    if lang == Lang::En && !english.is_empty() {
        return english.to_owned();
    }
    let key = format!("error-{}", code.as_str());
    let path = details.get("path").and_then(Value::as_str).unwrap_or("");
    let field = if path.is_empty() {
        None
    } else {
        lookup(lang, &format!("{key}-field"), &[("path", path)])
    };
    field
        .or_else(|| lookup(lang, &key, &[]))
        .unwrap_or_else(|| english.to_owned())
}

tokio::task_local! {
    static CURRENT: Lang;
}

/// Runs `work` with `lang` as the current language (see [`current`]).
pub async fn scope<F: std::future::Future>(lang: Lang, work: F) -> F::Output {
    CURRENT.scope(lang, work).await
}

/// The language of the request being answered, if there is one.
pub fn current() -> Option<Lang> {
    CURRENT.try_with(|lang| *lang).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(source: &str) -> BTreeSet<String> {
        let resource = fluent_syntax_keys(source);
        resource.into_iter().collect()
    }

    /// The message ids of a catalogue, read with Fluent's own parser.
    fn fluent_syntax_keys(source: &str) -> Vec<String> {
        let resource = FluentResource::try_new(source.to_owned()).expect("catalogue parses");
        resource
            .entries()
            .filter_map(|entry| match entry {
                fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn both_catalogues_have_the_same_keys_and_parse_without_errors() {
        let zh = keys(SOURCES[Lang::ZhCn.index()]);
        let en = keys(SOURCES[Lang::En.index()]);
        let only_zh: Vec<_> = zh.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&zh).collect();
        assert!(
            only_zh.is_empty() && only_en.is_empty(),
            "missing in en: {only_zh:?}; missing in zh-CN: {only_en:?}"
        );
        let zh_vars = variables(SOURCES[Lang::ZhCn.index()]);
        let en_vars = variables(SOURCES[Lang::En.index()]);
        for key in &zh {
            assert_eq!(
                zh_vars.get(key),
                en_vars.get(key),
                "{key}: both languages take the same arguments"
            );
        }
        for lang in Lang::ALL {
            let bundle = &bundles()[lang.index()];
            for key in &zh {
                let pattern = bundle.get_message(key).and_then(|m| m.value());
                let pattern = pattern.unwrap_or_else(|| panic!("{lang}: {key} has no value"));
                let mut args = FluentArgs::new();
                for var in zh_vars.get(key).into_iter().flatten() {
                    args.set(var.clone(), "x");
                }
                let mut errors = Vec::new();
                bundle.format_pattern(pattern, Some(&args), &mut errors);
                assert!(errors.is_empty(), "{lang}: {key}: {errors:?}");
            }
        }
    }

    /// The variables (`{ $name }`) each message of a catalogue uses (every message is one
    /// line).
    fn variables(source: &str) -> std::collections::BTreeMap<String, BTreeSet<String>> {
        let mut out = std::collections::BTreeMap::new();
        for line in source.lines() {
            let Some((key, value)) = line.split_once(" = ") else {
                continue;
            };
            if key.starts_with('#') {
                continue;
            }
            let vars: BTreeSet<String> = value
                .split("{ $")
                .skip(1)
                .filter_map(|rest| rest.split_once(" }").map(|(v, _)| v.to_owned()))
                .collect();
            out.insert(key.to_owned(), vars);
        }
        out
    }

    #[test]
    fn every_error_code_and_closed_value_has_a_text_in_each_language() {
        let mut wanted: Vec<String> = ErrorCode::ALL
            .iter()
            .map(|c| format!("error-{}", c.as_str()))
            .collect();
        wanted.extend(
            gridline_sync::CaseState::ALL
                .iter()
                .map(|s| format!("state-{}", s.as_str())),
        );
        wanted.extend(
            gridline_sync::Role::ALL
                .iter()
                .map(|r| format!("role-{}", r.as_str())),
        );
        wanted.extend(["low", "medium", "high"].map(|s| format!("severity-{s}")));
        wanted.extend(
            gridline_sync::case::CaseSource::ALL
                .iter()
                .map(|s| format!("source-{}", s.as_str())),
        );
        for lang in Lang::ALL {
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|k| lookup(lang, k, &[]).is_none())
                .collect();
            assert!(missing.is_empty(), "{lang} lacks {missing:?}");
        }
    }

    #[test]
    fn chinese_error_messages_are_chinese_and_name_the_field() {
        let has_han = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        for code in ErrorCode::ALL {
            let zh = error_message(Lang::ZhCn, *code, "english text", &Value::Null);
            assert!(has_han(&zh), "{code}: {zh}");
            let en = error_message(Lang::En, *code, "", &Value::Null);
            assert!(!has_han(&en) && !en.is_empty(), "{code}: {en}");
        }
        let details = serde_json::json!({"path": "zones[2].name", "reason": "too long"});
        let zh = error_message(Lang::ZhCn, ErrorCode::InvalidRequest, "x", &details);
        assert_eq!(zh, "请求无效：字段“zones[2].name”的取值不符合要求。");
        assert_eq!(
            error_message(
                Lang::En,
                ErrorCode::InvalidRequest,
                "zones[2].name: too long",
                &details
            ),
            "zones[2].name: too long"
        );
    }

    #[test]
    fn accept_language_picks_a_catalogue_or_the_default() {
        let cases = [
            (Some("zh-CN,zh;q=0.9,en;q=0.8"), Lang::En, Lang::ZhCn),
            (Some("en-US,en;q=0.9"), Lang::ZhCn, Lang::En),
            (Some("zh"), Lang::En, Lang::ZhCn),
            (Some("zh-Hans-CN"), Lang::En, Lang::ZhCn),
            (Some("zh-TW"), Lang::En, Lang::ZhCn),
            (Some("fr-FR, de;q=0.5"), Lang::ZhCn, Lang::ZhCn),
            (Some("fr-FR, en;q=0.5"), Lang::ZhCn, Lang::En),
            (Some("en;q=0.4, zh;q=0.8"), Lang::En, Lang::ZhCn),
            (Some(""), Lang::En, Lang::En),
            (Some("*"), Lang::ZhCn, Lang::ZhCn),
            (Some(";;;,,"), Lang::En, Lang::En),
            (None, Lang::ZhCn, Lang::ZhCn),
        ];
        for (header, default, want) in cases {
            assert_eq!(Lang::negotiate(header, default), want, "{header:?}");
        }
    }
}
