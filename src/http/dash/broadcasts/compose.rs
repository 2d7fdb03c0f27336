//! Writing a broadcast: the form (the message per language, the audience), the preview (each language as its
//! customers will see it, and how many customers it reaches now — a dry run, nothing written) and sending it.
//! A refused field re-renders the form (422) with the reason next to it; the service checks everything.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::super::layout::{Ctx, Page, PageResult};
use super::super::session::Editor;
use super::super::{BASE, Form};
use super::rendered;
use crate::app::AppState;
use crate::domain::Language;
use crate::error::AppError;
use crate::services::broadcasts::{self, Draft, MAX_TEXT, Request};
use crate::services::shop;

/// The compose form as submitted (every field optional; the service says what is missing).
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct Compose {
    text_en: Option<String>,
    text_fa: Option<String>,
    text_ru: Option<String>,
    fallback: Option<String>,
    audience: Option<String>,
    days: Option<String>,
    location: Option<String>,
}

const KINDS: [&str; 5] = ["all", "active", "expired", "never_bought", "location"];

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Compose {
    /// The text for `lang` as typed (browsers send line ends as CRLF; Telegram wants LF).
    fn text(&self, lang: Language) -> Option<String> {
        let t = match lang {
            Language::En => &self.text_en,
            Language::Fa => &self.text_fa,
            Language::Ru => &self.text_ru,
        };
        t.as_deref().filter(|t| !t.trim().is_empty()).map(|t| t.replace("\r\n", "\n"))
    }

    fn kind(&self) -> &str {
        given(&self.audience).unwrap_or("all")
    }

    fn draft(&self) -> Result<Draft, AppError> {
        let texts: BTreeMap<String, String> =
            Language::ALL.iter().filter_map(|l| self.text(*l).map(|t| (l.as_str().to_owned(), t))).collect();
        let kind = self.kind().to_owned();
        let days = match given(&self.days) {
            Some(d) if kind == "expired" => {
                Some(d.parse().map_err(|_| AppError::field("audience.days", "a whole number of days"))?)
            }
            _ => None,
        };
        let location = given(&self.location).filter(|_| kind == "location").map(str::to_owned);
        let fallback = given(&self.fallback).map(str::to_owned);
        Draft::parse(&Request { texts, fallback, audience_kind: kind, days, location })
    }

    /// The form's values as hidden fields (the preview's buttons carry them on).
    fn hidden(&self) -> Markup {
        let fields = [
            ("text_en", &self.text_en),
            ("text_fa", &self.text_fa),
            ("text_ru", &self.text_ru),
            ("fallback", &self.fallback),
            ("audience", &self.audience),
            ("days", &self.days),
            ("location", &self.location),
        ];
        html! { @for (name, value) in fields { @if let Some(v) = value { input type="hidden" name=(name) value=(v); } } }
    }
}

/// The service's field (`texts.fa`, `audience.days`) as the form's input name.
fn input_of(field: &str) -> &'static str {
    match field {
        "texts" | "texts.en" => "text_en",
        "texts.fa" => "text_fa",
        "texts.ru" => "text_ru",
        "fallback" => "fallback",
        "audience.days" => "days",
        "audience.location" => "location",
        _ => "audience",
    }
}

/// A refused field: (the service's name, why).
type Refused = (String, String);

pub(super) async fn new(State(state): State<AppState>, e: Editor) -> PageResult {
    form_page(&state, &e.ctx, &Compose::default(), None).await
}

pub(super) async fn edit(State(state): State<AppState>, e: Editor, Form(c): Form<Compose>) -> PageResult {
    form_page(&state, &e.ctx, &c, None).await
}

/// A field error re-renders the form; anything else is an error page.
async fn refuse(state: &AppState, ctx: &Ctx, c: &Compose, error: AppError) -> PageResult {
    match error {
        AppError::Field { field, message } => form_page(state, ctx, c, Some((field, message))).await,
        other => Err(other.into()),
    }
}

async fn form_page(state: &AppState, ctx: &Ctx, c: &Compose, refused: Option<Refused>) -> PageResult {
    let locations = shop::locations(&state.pool).await?;
    let bad = refused.as_ref().map(|(f, _)| input_of(f));
    let invalid = |name: &str| (bad == Some(name)).then_some("true");
    let kind = c.kind();
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let body = html! {
        @if let Some((field, message)) = &refused {
            div.flash.error role="alert" #compose-error {
                p { (ctx.ta("dash-error-field", &[("field", field.as_str().into()), ("message", message.as_str().into())])) }
            }
        }
        form.stack method="post" action=(format!("{BASE}/broadcasts/preview")) {
            (ctx.csrf_field())
            fieldset {
                legend { (ctx.t("dash-bc-texts")) }
                p.muted { (ctx.t("dash-bc-texts-help")) }
                @for lang in Language::ALL {
                    @let name = format!("text_{}", lang.as_str());
                    label {
                        (ctx.t(&format!("dash-bc-lang-{}", lang.as_str())))
                        textarea name=(name) rows="5" maxlength=(MAX_TEXT) lang=(lang.as_str()) dir=(if lang.is_rtl() { "rtl" } else { "ltr" })
                            aria-invalid=[invalid(&name)] aria-describedby=[invalid(&name).map(|_| "compose-error")] {
                            (c.text(*lang).unwrap_or_default())
                        }
                    }
                }
                label {
                    (ctx.t("dash-bc-fallback"))
                    select name="fallback" aria-invalid=[invalid("fallback")] {
                        option value="" { (ctx.t("dash-bc-fallback-auto")) }
                        @for lang in Language::ALL {
                            option value=(lang.as_str()) selected[given(&c.fallback) == Some(lang.as_str())] {
                                (ctx.t(&format!("dash-bc-lang-{}", lang.as_str())))
                            }
                        }
                    }
                }
            }
            fieldset {
                legend { (ctx.t("dash-bc-audience")) }
                label {
                    (ctx.t("dash-bc-audience-kind"))
                    select name="audience" aria-invalid=[invalid("audience")] {
                        @for k in KINDS {
                            option value=(k) selected[kind == k] { (ctx.t(&format!("dash-bc-aud-{}", k.replace('_', "-")))) }
                        }
                    }
                }
                label {
                    (ctx.t("dash-bc-days"))
                    input name="days" type="number" min="1" max=(broadcasts::MAX_DAYS) value=(value(&c.days)) aria-invalid=[invalid("days")];
                }
                label {
                    (ctx.t("dash-bc-location"))
                    input name="location" list="locations" maxlength="16" value=(value(&c.location)) aria-invalid=[invalid("location")];
                }
                datalist #locations { @for l in &locations { option value=(l.code) { (l.name(ctx.lang)) } } }
            }
            div { button type="submit" { (ctx.t("dash-bc-preview")) } }
        }
    };
    let status = if refused.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(ctx.render_status(status, Page { title: ctx.t("dash-bc-new"), body }))
}

pub(super) async fn preview(State(state): State<AppState>, e: Editor, Form(c): Form<Compose>) -> PageResult {
    let ctx = &e.ctx;
    let draft = match c.draft() {
        Ok(d) => d,
        Err(error) => return refuse(&state, ctx, &c, error).await,
    };
    let count = match broadcasts::count(&state.pool, &draft).await {
        Ok(n) => n,
        Err(error) => return refuse(&state, ctx, &c, error).await,
    };
    let fallback_name = ctx.t(&format!("dash-bc-lang-{}", draft.fallback.as_str()));
    let audience = serde_json::to_value(&draft.audience).unwrap_or_default();
    let body = html! {
        section.card aria-labelledby="reach" {
            h2 #reach { (ctx.t("dash-bc-audience")) }
            p { (super::audience(ctx, &audience)) " — "
                strong { (ctx.ta("dash-bc-reach", &[("count", ctx.num(count).into())])) } }
            p.muted { (ctx.t("dash-bc-reach-help")) }
        }
        section aria-labelledby="as-seen" {
            h2 #as-seen { (ctx.t("dash-bc-as-seen")) }
            @for lang in Language::ALL {
                h3 { (ctx.ta("dash-bc-customers-in", &[("language", ctx.t(&format!("dash-bc-lang-{}", lang.as_str())).into())])) }
                @match draft.texts.get(lang) {
                    Some(text) => (rendered(*lang, text)),
                    None => {
                        p.muted { (ctx.ta("dash-bc-gets-fallback", &[("language", fallback_name.as_str().into())])) }
                        (rendered(draft.fallback, &draft.texts[&draft.fallback]))
                    }
                }
            }
        }
        div.actions {
            form.inline method="post" action=(format!("{BASE}/broadcasts")) {
                (ctx.csrf_field())
                (c.hidden())
                button type="submit" { (ctx.ta("dash-bc-send", &[("count", ctx.num(count).into())])) }
            }
            form.inline method="post" action=(format!("{BASE}/broadcasts/new")) {
                (ctx.csrf_field())
                (c.hidden())
                button.secondary type="submit" { (ctx.t("dash-bc-change")) }
            }
        }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-bc-preview-title"), body }))
}

pub(super) async fn send(State(state): State<AppState>, e: Editor, Form(c): Form<Compose>) -> PageResult {
    let draft = match c.draft() {
        Ok(d) => d,
        Err(error) => return refuse(&state, &e.ctx, &c, error).await,
    };
    let created: Result<_, AppError> = broadcasts::create(&state.pool, &state.settings.jobs, &draft, &e.who()).await;
    let b = match created {
        Ok(b) => b,
        Err(error) => return refuse(&state, &e.ctx, &c, error).await,
    };
    let to: Response = e.ctx.done(&format!("{BASE}/broadcasts/{}", b.row.id), "broadcast-created");
    Ok(to)
}
