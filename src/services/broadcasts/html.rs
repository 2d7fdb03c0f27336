//! Telegram's HTML (`parse_mode=HTML`), checked before a broadcast is accepted so every message of it can be sent:
//! only the tags Telegram knows (`b strong i em u ins s strike del span.tg-spoiler tg-spoiler a[href] tg-emoji
//! code pre blockquote`), properly nested and closed, and `<`, `>`, `&` outside tags written as entities
//! (`&lt; &gt; &amp; &quot;` or numeric). `preview` turns a checked text into browser HTML that shows it as
//! customers will see it, with nothing but a handful of formatting tags (no attribute but a web link's `href`).

/// The tags Telegram accepts and the attributes each may carry.
const TAGS: &[(&str, &[&str])] = &[
    ("b", &[]),
    ("strong", &[]),
    ("i", &[]),
    ("em", &[]),
    ("u", &[]),
    ("ins", &[]),
    ("s", &[]),
    ("strike", &[]),
    ("del", &[]),
    ("span", &["class"]),
    ("tg-spoiler", &[]),
    ("a", &["href"]),
    ("tg-emoji", &["emoji-id"]),
    ("code", &["class"]),
    ("pre", &[]),
    ("blockquote", &["expandable"]),
];

/// Checks `text`; the error says what is wrong and where (a character offset).
pub fn check(text: &str) -> Result<(), String> {
    let chars: Vec<char> = text.chars().collect();
    let mut open: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '<' => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '>')
                    .map(|p| i + p)
                    .ok_or_else(|| format!("`<` at character {i} starts no tag: write it as &lt;"))?;
                let inner: String = chars[i + 1..end].iter().collect();
                tag(&inner, &mut open).map_err(|e| format!("{e} (at character {i})"))?;
                i = end + 1;
            }
            '>' => return Err(format!("`>` at character {i} outside a tag: write it as &gt;")),
            '&' => {
                let end = chars[i..].iter().take(12).position(|&c| c == ';').map(|p| i + p);
                let entity: Option<String> = end.map(|e| chars[i + 1..e].iter().collect());
                if !entity.as_deref().is_some_and(known_entity) {
                    return Err(format!("`&` at character {i} starts no entity: write it as &amp;"));
                }
                i = end.unwrap_or(i) + 1;
            }
            _ => i += 1,
        }
    }
    match open.pop() {
        Some(name) => Err(format!("<{name}> is never closed")),
        None => Ok(()),
    }
}

/// The checked `text` as safe browser HTML: its formatting tags mapped to plain ones (`b i u s code pre blockquote`,
/// spoilers as `span.spoiler`), links kept only to `http(s)`, `tg:` and `mailto:` addresses (escaped, opened
/// without referrer), entities kept as they are, every other character escaped. Refuses what `check` refuses.
pub fn preview(text: &str) -> Result<String, String> {
    check(text)?;
    let mut out = String::with_capacity(text.len() + 32);
    let mut closers: Vec<&'static str> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('>').ok_or("unclosed tag")?;
        let inner = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if inner.starts_with('/') {
            out.push_str(closers.pop().unwrap_or(""));
            continue;
        }
        let (name, attrs) = inner.split_once(|c: char| c.is_whitespace()).unwrap_or((inner, ""));
        let (open, close) = match name.to_ascii_lowercase().as_str() {
            "b" | "strong" => ("<b>".to_owned(), "</b>"),
            "i" | "em" => ("<i>".to_owned(), "</i>"),
            "u" | "ins" => ("<u>".to_owned(), "</u>"),
            "s" | "strike" | "del" => ("<s>".to_owned(), "</s>"),
            "span" | "tg-spoiler" => ("<span class=\"spoiler\">".to_owned(), "</span>"),
            "code" => ("<code>".to_owned(), "</code>"),
            "pre" => ("<pre>".to_owned(), "</pre>"),
            "blockquote" => ("<blockquote>".to_owned(), "</blockquote>"),
            "a" => {
                let href = attributes(attrs)?.into_iter().find(|(n, _)| n == "href").map(|(_, v)| unescape(&v));
                match href.filter(|h| safe_link(h)) {
                    Some(h) => (format!("<a href=\"{}\" rel=\"noopener noreferrer nofollow\">", escape(&h)), "</a>"),
                    None => ("<span>".to_owned(), "</span>"),
                }
            }
            _ => ("<span>".to_owned(), "</span>"),
        };
        out.push_str(&open);
        closers.push(close);
    }
    out.push_str(rest);
    Ok(out)
}

fn safe_link(href: &str) -> bool {
    let lower = href.trim_start().to_ascii_lowercase();
    ["http://", "https://", "tg://", "mailto:"].iter().any(|scheme| lower.starts_with(scheme))
}

/// Decodes the entities `check` allows.
fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp + 1..];
        let decoded = tail.find(';').filter(|&semi| semi <= 12).and_then(|semi| {
            let c = match &tail[..semi] {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                n => n.strip_prefix('#').and_then(|num| {
                    match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => num.parse().ok(),
                    }
                    .and_then(char::from_u32)
                }),
            }?;
            Some((c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text made safe for HTML (content and double- or single-quoted attributes).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn known_entity(name: &str) -> bool {
    match name {
        "lt" | "gt" | "amp" | "quot" => true,
        _ => match name.strip_prefix('#') {
            Some(hex) if hex.starts_with(['x', 'X']) => {
                u32::from_str_radix(&hex[1..], 16).ok().and_then(char::from_u32).is_some()
            }
            Some(dec) => dec.parse::<u32>().ok().and_then(char::from_u32).is_some(),
            None => false,
        },
    }
}

/// One tag's inside (between `<` and `>`): opens or closes it on `open`.
fn tag(inner: &str, open: &mut Vec<String>) -> Result<(), String> {
    if let Some(name) = inner.strip_prefix('/') {
        let name = name.trim().to_ascii_lowercase();
        return match open.pop() {
            Some(top) if top == name => Ok(()),
            Some(top) => Err(format!("</{name}> closes <{top}>")),
            None => Err(format!("</{name}> closes nothing")),
        };
    }
    let (name, rest) = inner.split_once(|c: char| c.is_whitespace()).unwrap_or((inner, ""));
    let name = name.to_ascii_lowercase();
    let Some((_, allowed)) = TAGS.iter().find(|(t, _)| *t == name) else {
        return Err(format!("<{name}> is not a tag Telegram supports"));
    };
    let attrs = attributes(rest)?;
    for (attr, value) in &attrs {
        if !allowed.contains(&attr.as_str()) {
            return Err(format!("<{name}> takes no `{attr}` attribute"));
        }
        if name == "span" && value != "tg-spoiler" {
            return Err("<span> needs class=\"tg-spoiler\"".to_owned());
        }
    }
    let has = |a: &str| attrs.iter().any(|(n, _)| n == a);
    if name == "span" && !has("class") {
        return Err("<span> needs class=\"tg-spoiler\"".to_owned());
    }
    if name == "a" && !attrs.iter().any(|(n, v)| n == "href" && !v.is_empty()) {
        return Err("<a> needs an href".to_owned());
    }
    if name == "tg-emoji" && !has("emoji-id") {
        return Err("<tg-emoji> needs an emoji-id".to_owned());
    }
    open.push(name);
    Ok(())
}

/// `name="value"`, `name='value'`, `name=value` or a bare `name`.
fn attributes(mut rest: &str) -> Result<Vec<(String, String)>, String> {
    let mut attrs = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(attrs);
        }
        let name_end = rest.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("cannot read the attribute at `{rest}`"));
        }
        rest = &rest[name_end..];
        let Some(after) = rest.trim_start().strip_prefix('=') else {
            attrs.push((name, String::new()));
            continue;
        };
        let after = after.trim_start();
        let (value, tail) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let close = after[1..].find(q).ok_or_else(|| format!("the value of `{name}` is never closed"))?;
                (&after[1..1 + close], &after[close + 2..])
            }
            _ => after.split_at(after.find(char::is_whitespace).unwrap_or(after.len())),
        };
        attrs.push((name, value.to_owned()));
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::{check, preview};

    #[test]
    fn a_preview_keeps_formatting_and_nothing_that_runs() {
        assert_eq!(preview("<b>hi</b> &lt;script&gt; <i>x</i>").unwrap(), "<b>hi</b> &lt;script&gt; <i>x</i>");
        assert_eq!(
            preview("<a href=\"https://e.com/?a=1&amp;b=&quot;2\">go</a>").unwrap(),
            "<a href=\"https://e.com/?a=1&amp;b=&quot;2\" rel=\"noopener noreferrer nofollow\">go</a>"
        );
        assert_eq!(preview("<a href=\"javascript:alert(1)\">x</a>").unwrap(), "<span>x</span>");
        assert_eq!(preview("<a href=\" JaVaScRiPt:alert(1)\">x</a>").unwrap(), "<span>x</span>");
        assert_eq!(
            preview("<span class=\"tg-spoiler\">s</span><pre><code class=\"language-rust\">c</code></pre>").unwrap(),
            "<span class=\"spoiler\">s</span><pre><code>c</code></pre>"
        );
        assert_eq!(preview("<tg-emoji emoji-id=\"5\">👍</tg-emoji>").unwrap(), "<span>👍</span>");
        assert!(preview("<script>alert(1)</script>").is_err());
        assert!(preview("<b onmouseover=\"x\">x</b>").is_err());
    }

    #[test]
    fn telegram_html_is_accepted() {
        for ok in [
            "plain text",
            "<b>bold</b> and <i>italic <u>under</u></i>",
            "<a href=\"https://example.com/?a=1&amp;b=2\">link</a>",
            "5 &lt; 6 &amp;&amp; 7 &gt; 3, &quot;quoted&quot; &#128512; &#x1F600;",
            "<span class=\"tg-spoiler\">secret</span> <tg-spoiler>also</tg-spoiler>",
            "<pre><code class=\"language-rust\">fn main() {}</code></pre>",
            "<blockquote expandable>long</blockquote>",
            "سلام <b>دوستان</b>",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn what_telegram_would_refuse_is_refused() {
        for bad in [
            "1 < 2",
            "a > b",
            "fish & chips",
            "&nbsp;",
            "<b>unclosed",
            "<b><i>crossed</b></i>",
            "</b>",
            "<div>no</div>",
            "<br>",
            "<a>no href</a>",
            "<span>no class</span>",
            "<b onclick=\"x\">x</b>",
            "<a href=\"x>y</a>",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
