//! The main menu, /start (with the offer to resume an unfinished purchase), help and language.

use super::{HandlerError, HandlerResult};
use crate::bot::callback::Cb;
use crate::bot::ui::{Ctx, Screen, button, html};
use crate::domain::Language;
use crate::i18n;
use crate::services::{orders, users};

/// The main menu screen.
pub fn main_screen(ctx: &Ctx<'_>) -> Screen {
    let name = ctx.user.first_name.clone().unwrap_or_default();
    let text = ctx.t_args("menu-title", &[("name", html(&name).into())]);
    Screen::new(
        text,
        vec![
            vec![button(ctx.t("menu-buy"), Cb::Buy), button(ctx.t("menu-trial"), Cb::Trial)],
            vec![button(ctx.t("menu-services"), Cb::Services)],
            vec![button(ctx.t("menu-language"), Cb::Language), button(ctx.t("menu-help"), Cb::Help)],
        ],
    )
}

pub async fn main(ctx: &Ctx<'_>) -> HandlerResult {
    ctx.show(main_screen(ctx)).await?;
    Ok(())
}

/// `/start`: the menu, or first the unfinished purchase to pick up where the customer left.
pub async fn start(ctx: &Ctx<'_>) -> HandlerResult {
    if let Some(draft) = orders::current_draft(&ctx.app.pool, ctx.user.id).await?
        && draft.selection.is_started()
    {
        let summary = crate::bot::handlers::buy::describe(ctx, &draft.selection).await?;
        let text = ctx.t_args("resume-offer", &[("summary", summary.into())]);
        let screen = Screen::new(
            text,
            vec![
                vec![button(ctx.t("btn-resume"), Cb::Resume(draft.order_id))],
                vec![button(ctx.t("btn-start-over"), Cb::Buy), button(ctx.t("btn-menu"), Cb::Menu)],
            ],
        );
        ctx.send(screen).await?;
        return Ok(());
    }
    ctx.send(main_screen(ctx)).await?;
    Ok(())
}

pub async fn help(ctx: &Ctx<'_>) -> HandlerResult {
    let text = ctx.t_args("help", &[("support", html(&ctx.app.settings.shop.support_contact).into())]);
    ctx.show(Screen::new(text, vec![vec![button(ctx.t("btn-menu"), Cb::Menu)]])).await?;
    Ok(())
}

pub async fn language(ctx: &Ctx<'_>) -> HandlerResult {
    let rows = Language::ALL
        .iter()
        .map(|l| vec![button(i18n::t(*l, "language-name"), Cb::SetLanguage(*l))])
        .chain([vec![button(ctx.t("btn-menu"), Cb::Menu)]])
        .collect();
    ctx.show(Screen::new(ctx.t("language-choose"), rows)).await?;
    Ok(())
}

pub async fn set_language(ctx: &Ctx<'_>, lang: Language) -> Result<Option<String>, HandlerError> {
    users::set_language(&ctx.app.pool, ctx.user.id, lang).await?;
    let mut user = ctx.user.clone();
    user.language = lang;
    let switched = Ctx { user, ..*ctx };
    switched.show(main_screen(&switched)).await?;
    Ok(Some(i18n::t(lang, "language-set")))
}

/// Anything we do not understand: say so, and show the menu.
pub async fn unknown(ctx: &Ctx<'_>) -> HandlerResult {
    let mut screen = main_screen(ctx);
    screen.text = format!("{}\n\n{}", ctx.t("unknown-message"), screen.text);
    ctx.send(screen).await?;
    Ok(())
}
