//! The free trial: pick a location, get a trial subscription through the same path as a paid one, and be told
//! honestly when it will come (at once, or queued until a node can take it).

use super::{HandlerError, HandlerResult};
use crate::bot::callback::Cb;
use crate::bot::ui::{Ctx, Screen, button};
use crate::i18n::{self, Arg};
use crate::services::shop;
use crate::services::trials::{self, TrialOutcome};

pub async fn offer(ctx: &Ctx<'_>) -> HandlerResult {
    let t = &ctx.app.settings.trial;
    let lang = ctx.lang();
    let home = vec![button(ctx.t("btn-menu"), Cb::Menu)];
    if !t.enabled {
        return Ok(ctx.show(Screen::new(ctx.t("trial-disabled"), vec![home])).await?);
    }
    if ctx.user.trial_used_at.is_some() {
        return Ok(ctx
            .show(Screen::new(ctx.t("trial-used"), vec![vec![button(ctx.t("menu-buy"), Cb::Buy)], home]))
            .await?);
    }
    let data = t.data_cap().map(|c| super::buy::data_text(lang, c)).unwrap_or_default();
    let text = ctx.t_args(
        "trial-choose",
        &[
            ("n", Arg::Count(t.duration_days.into())),
            ("days", i18n::number(lang, t.duration_days.into()).into()),
            ("data", data.into()),
            ("devices", super::buy::devices_text(lang, t.devices).into()),
        ],
    );
    let mut rows: Vec<_> = shop::locations(&ctx.app.pool)
        .await?
        .into_iter()
        .filter(|l| l.free_seats > 0)
        .map(|l| vec![button(format!("{} {}", l.flag, l.name(lang)), Cb::TrialLocation(l.code))])
        .collect();
    rows.push(home);
    ctx.show(Screen::new(text, rows)).await?;
    Ok(())
}

pub async fn take(ctx: &Ctx<'_>, location: &str) -> Result<Option<String>, HandlerError> {
    let outcome = trials::grant(&ctx.app.pool, &ctx.app.limiter, &ctx.app.settings, &ctx.user, location).await?;
    let home = vec![button(ctx.t("btn-menu"), Cb::Menu)];
    let screen = match outcome {
        TrialOutcome::Granted { queued, .. } => {
            let key = if queued.is_some() { "trial-queued" } else { "trial-granted" };
            Screen::new(ctx.t(key), vec![vec![button(ctx.t("menu-services"), Cb::Services)], home])
        }
        TrialOutcome::AlreadyUsed => {
            Screen::new(ctx.t("trial-used"), vec![vec![button(ctx.t("menu-buy"), Cb::Buy)], home])
        }
        TrialOutcome::RateLimited { retry_after } => {
            let minutes = retry_after.as_secs().div_ceil(60).max(1) as i64;
            let text = ctx.t_args(
                "trial-limited",
                &[("n", Arg::Count(minutes)), ("minutes", i18n::number(ctx.lang(), minutes).into())],
            );
            Screen::new(text, vec![home])
        }
        TrialOutcome::Unavailable => {
            Screen::new(ctx.t("trial-unavailable"), vec![vec![button(ctx.t("btn-back"), Cb::Trial)], home])
        }
        TrialOutcome::Disabled => Screen::new(ctx.t("trial-disabled"), vec![home]),
    };
    ctx.show(screen).await?;
    Ok(None)
}
