//! The "add a node" form: its fields (with the defaults of `vpnshop server add` and the admin API), reading a
//! submission into a `ServerInput` (a bad value names its field), and the form page, re-rendered with the
//! operator's values and the error beside the field it concerns.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::super::BASE;
use super::super::layout::{Ctx, Page};
use crate::db::locations::LocationRow;
use crate::domain::server::{Core, Protocol};
use crate::error::AppError;
use crate::services::servers::ServerInput;

/// What the operator typed, by field name (empty before the first submission).
#[derive(Debug, Clone, Default)]
pub struct Fields(pub HashMap<String, String>);

enum Kind {
    Text,
    Number,
    Choice(&'static [&'static str]),
    Location,
    Area,
}

struct Spec {
    name: &'static str,
    label: &'static str,
    hint: Option<&'static str>,
    kind: Kind,
    default: &'static str,
    required: bool,
}

const fn spec(name: &'static str, label: &'static str, hint: Option<&'static str>, kind: Kind) -> Spec {
    Spec { name, label, hint, kind, default: "", required: false }
}

const fn with_default(s: Spec, default: &'static str) -> Spec {
    Spec { default, ..s }
}

const fn required(s: Spec) -> Spec {
    Spec { required: true, ..s }
}

const BASIC: &[Spec] = &[
    required(spec("name", "dash-nodes-field-name", Some("dash-nodes-hint-name"), Kind::Text)),
    required(spec("location", "dash-nodes-field-location", None, Kind::Location)),
    required(spec("public_host", "dash-nodes-field-public-host", Some("dash-nodes-hint-public-host"), Kind::Text)),
    with_default(spec("public_port", "dash-nodes-field-public-port", None, Kind::Number), "443"),
    with_default(spec("capacity", "dash-nodes-field-capacity", Some("dash-nodes-hint-capacity"), Kind::Number), "500"),
    spec("host_key", "dash-nodes-field-host-key", Some("dash-nodes-hint-host-key"), Kind::Text),
];

const CONNECTION: &[Spec] = &[
    spec("ssh_host", "dash-nodes-field-ssh-host", Some("dash-nodes-hint-ssh-host"), Kind::Text),
    with_default(spec("ssh_port", "dash-nodes-field-ssh-port", None, Kind::Number), "22"),
    with_default(spec("ssh_user", "dash-nodes-field-ssh-user", None, Kind::Text), "vpnshop"),
    with_default(spec("core", "dash-nodes-field-core", None, Kind::Choice(&["v2ray", "xray"])), "v2ray"),
    with_default(spec("protocol", "dash-nodes-field-protocol", None, Kind::Choice(&["vmess", "vless"])), "vmess"),
    with_default(spec("inbound_tag", "dash-nodes-field-inbound-tag", None, Kind::Text), "proxy"),
    with_default(
        spec("api_port", "dash-nodes-field-api-port", Some("dash-nodes-hint-api-port"), Kind::Number),
        "10085",
    ),
    spec("config_path", "dash-nodes-field-config-path", Some("dash-nodes-hint-config-path"), Kind::Text),
    spec("restart_command", "dash-nodes-field-restart", Some("dash-nodes-hint-restart"), Kind::Text),
    spec("base_config", "dash-nodes-field-base-config", Some("dash-nodes-hint-base-config"), Kind::Area),
];

impl Fields {
    /// A field's text, trimmed; `None` when empty.
    fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    fn required(&self, ctx: &Ctx, name: &str) -> Result<String, AppError> {
        self.text(name).ok_or_else(|| AppError::field(name, ctx.t("dash-nodes-required")))
    }

    fn port(&self, ctx: &Ctx, name: &str, default: u16) -> Result<u16, AppError> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| AppError::field(name, ctx.t("dash-nodes-bad-port"))),
        }
    }

    fn choice<T: std::str::FromStr>(&self, ctx: &Ctx, name: &str, default: T) -> Result<T, AppError> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| AppError::field(name, ctx.t("dash-nodes-bad-choice"))),
        }
    }

    /// The submission as the servers service takes it; the first bad field (in form order) is the error.
    pub fn input(&self, ctx: &Ctx) -> Result<ServerInput, AppError> {
        let name = self.required(ctx, "name")?;
        let location = self.required(ctx, "location")?;
        let public_host = self.required(ctx, "public_host")?;
        let public_port = self.port(ctx, "public_port", 443)?;
        let capacity = match self.text("capacity") {
            None => 500,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|c| *c > 0 && i32::try_from(*c).is_ok())
                .ok_or_else(|| AppError::field("capacity", ctx.t("dash-nodes-bad-capacity")))?,
        };
        let host_key = self.text("host_key");
        let ssh_host = self.text("ssh_host");
        let ssh_port = self.port(ctx, "ssh_port", 22)?;
        let ssh_user = self.text("ssh_user").unwrap_or_else(|| "vpnshop".to_owned());
        let core = self.choice(ctx, "core", Core::V2ray)?;
        let protocol = self.choice(ctx, "protocol", Protocol::Vmess)?;
        let inbound_tag = self.text("inbound_tag").unwrap_or_else(|| "proxy".to_owned());
        let api_port = self.port(ctx, "api_port", 10085)?;
        let base_config = match self.text("base_config") {
            None => None,
            Some(text) => Some(serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
                AppError::field("base_config", ctx.ta("dash-nodes-bad-json", &[("error", e.to_string().into())]))
            })?),
        };
        Ok(ServerInput {
            name,
            location,
            public_host,
            public_port,
            ssh_host,
            ssh_port,
            ssh_user,
            host_key,
            core,
            protocol,
            inbound_tag,
            api_port,
            config_path: self.text("config_path"),
            capacity,
            restart_command: self.text("restart_command"),
            base_config,
            // more inbounds than the one plain TCP inbound: `vpnshop server inbounds` or the admin API
            inbounds: Vec::new(),
        })
    }
}

fn location_label(ctx: &Ctx, l: &LocationRow) -> String {
    let label = l.labels.get(ctx.lang.as_str()).and_then(|v| v.as_str()).unwrap_or(&l.code);
    format!("{} {label} ({})", l.flag, l.code)
}

fn field(ctx: &Ctx, s: &Spec, fields: &Fields, locations: &[LocationRow], error: Option<(&str, &str)>) -> Markup {
    let value = match fields.0.get(s.name) {
        Some(v) => v.as_str(),
        None if fields.0.is_empty() => s.default,
        None => "",
    };
    let bad = error.filter(|(f, _)| *f == s.name).map(|(_, m)| m);
    let (id, hint_id, err_id) = (format!("f-{}", s.name), format!("hint-{}", s.name), format!("err-{}", s.name));
    let described: Vec<&str> =
        [s.hint.map(|_| hint_id.as_str()), bad.map(|_| err_id.as_str())].into_iter().flatten().collect();
    let described = (!described.is_empty()).then(|| described.join(" "));
    let invalid = bad.map(|_| "true");
    html! {
        label for=(id) {
            span { (ctx.t(s.label)) }
            @match s.kind {
                Kind::Text => input #(id) type="text" name=(s.name) value=(value) maxlength="500" required[s.required]
                    aria-invalid=[invalid] aria-describedby=[described.as_deref()];
                Kind::Number => input #(id) type="text" inputmode="numeric" name=(s.name) value=(value) maxlength="10"
                    aria-invalid=[invalid] aria-describedby=[described.as_deref()];
                Kind::Choice(options) => select #(id) name=(s.name) aria-invalid=[invalid] aria-describedby=[described.as_deref()] {
                    @for o in options { option value=(o) selected[*o == value] { (o) } }
                },
                Kind::Location => select #(id) name=(s.name) required[s.required] aria-invalid=[invalid] aria-describedby=[described.as_deref()] {
                    option value="" { "—" }
                    @for l in locations { option value=(l.code) selected[l.code == value] { (location_label(ctx, l)) } }
                },
                Kind::Area => textarea #(id) name=(s.name) rows="6" spellcheck="false" aria-invalid=[invalid]
                    aria-describedby=[described.as_deref()] { (value) },
            }
            @if let Some(h) = s.hint { small.muted #(hint_id) { (ctx.t(h)) } }
            @if let Some(m) = bad { span.field-error #(err_id) { (m) } }
        }
    }
}

/// The form (empty with defaults, or the operator's values with `error` = (field, message) beside its field).
pub fn page(
    ctx: &Ctx,
    locations: &[LocationRow],
    fields: &Fields,
    error: Option<(&str, &str)>,
    status: StatusCode,
) -> Response {
    let label = |name: &str| {
        BASIC.iter().chain(CONNECTION).find(|s| s.name == name).map(|s| ctx.t(s.label)).unwrap_or(name.to_owned())
    };
    let body = html! {
        @if let Some((name, message)) = error {
            div.flash.error role="alert" {
                p { a href=(format!("#f-{name}")) {
                    (ctx.ta("dash-error-field", &[("field", label(name).into()), ("message", message.into())]))
                } }
            }
        }
        form.stack method="post" action=(format!("{BASE}/nodes")) {
            (ctx.csrf_field())
            fieldset {
                legend { (ctx.t("dash-nodes-basic")) }
                @for s in BASIC { (field(ctx, s, fields, locations, error)) }
            }
            fieldset {
                legend { (ctx.t("dash-nodes-connection")) }
                @for s in CONNECTION { (field(ctx, s, fields, locations, error)) }
            }
            div { button type="submit" { (ctx.t("dash-nodes-add-submit")) } }
        }
        p { a href=(format!("{BASE}/nodes")) { (ctx.t("dash-nodes-back")) } }
    };
    ctx.render_status(status, Page { title: ctx.t("dash-nodes-add"), body })
}
