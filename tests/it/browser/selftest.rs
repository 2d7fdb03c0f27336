//! The browser harness proves itself on two static pages served here (no dashboard needed): it can wait for,
//! fill, click and read elements and take screenshots, and axe-core finds what a page gets wrong (so a clean
//! run on the dashboard means something) and nothing on a page that gets it right.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use super::{AxeNode, Browser, Violation, blocking_violations, screenshot_dir};

/// The CSS selectors of the elements breaking a rule.
fn targets(violation: &Violation) -> Vec<&str> {
    violation.nodes.iter().map(|n: &AxeNode| n.target.as_str()).collect()
}

/// A sign-in form done right, with a greeting that appears a moment after the click (so waiting is exercised).
const GOOD: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Harness: good page</title></head>
<body><main>
  <h1>Sign in</h1>
  <form onsubmit="return false">
    <label for="email">Email</label> <input id="email" name="email" type="email" autocomplete="email">
    <button id="go" type="button">Continue</button>
  </form>
  <h2>Status</h2>
  <div id="slot"></div>
</main>
<script>
  document.getElementById('go').addEventListener('click', () => setTimeout(() => {
    const p = document.createElement('p');
    p.id = 'greeting';
    p.setAttribute('role', 'status');
    p.textContent = 'Hello, ' + document.getElementById('email').value;
    document.getElementById('slot').appendChild(p);
  }, 300));
</script>
</body></html>"#;

/// The same form done wrong: an input with no label, faint text, and a heading level skipped.
const BAD: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Harness: bad page</title></head>
<body><main>
  <h1>Search</h1>
  <input id="q" name="q" type="text">
  <h4>Results</h4>
  <p id="faint" style="color:#c8c8c8;background:#ffffff">No customers found.</p>
</main></body></html>"#;

/// A Persian page, right to left (the dashboard's Persian pages must render their glyphs in screenshots).
const PERSIAN: &str = r#"<!doctype html>
<html lang="fa" dir="rtl"><head><meta charset="utf-8"><title>آزمایش</title></head>
<body><main><h1>ورود</h1><p id="fa">اشتراک شما فعال است.</p></main></body></html>"#;

/// Serves `/good`, `/bad` and `/fa` on a free loopback port; returns the base URL.
async fn serve_pages() -> String {
    let app = Router::new()
        .route("/good", get(|| async { Html(GOOD) }))
        .route("/bad", get(|| async { Html(BAD) }))
        .route("/fa", get(|| async { Html(PERSIAN) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind pages");
    let addr = listener.local_addr().expect("pages addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_harness_types_clicks_waits_reads_and_screenshots_in_a_real_chromium_left_to_right_and_right_to_left() {
    let Some(browser) = Browser::start().await else { return };
    assert!(browser.driver_log().contains("ChromeDriver"), "{}", browser.driver_log());
    let base = serve_pages().await;
    browser.set_viewport(1024, 700).await;
    assert_eq!(browser.eval("return [innerWidth, innerHeight]").await, serde_json::json!([1024, 700]));

    browser.goto(&format!("{base}/good")).await;
    assert_eq!(browser.text("h1").await, "Sign in");
    assert_eq!(browser.attr("html", "lang").await.as_deref(), Some("en"));
    browser.fill("#email", "first@example.com").await;
    browser.fill("#email", "ada@example.com").await; // fill replaces, it does not append
    browser.click("#go").await;
    assert_eq!(browser.text("#greeting").await, "Hello, ada@example.com");
    assert_eq!(browser.wait_for_text("[role=status]", "ada").await, "Hello, ada@example.com");
    assert_eq!(browser.url().await.path(), "/good");

    let shot = browser.screenshot("harness-good").await;
    assert_eq!(shot, screenshot_dir().join("harness-good.png"));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 2_000, "{} is not a real PNG", shot.display());

    browser.goto(&format!("{base}/fa")).await;
    assert_eq!(browser.eval("return getComputedStyle(document.body).direction").await, "rtl");
    assert_eq!(browser.text("#fa").await, "اشتراک شما فعال است.");
    // the paragraph's right edge sits at the right margin, as right-to-left text should
    let right_gap =
        browser.eval("return innerWidth - document.getElementById('fa').getBoundingClientRect().right").await;
    assert!(right_gap.as_f64().is_some_and(|gap| gap < 20.0), "text is not right-aligned: gap {right_gap}");
    browser.screenshot("harness-rtl").await;
    browser.close().await;
}

#[tokio::test]
async fn axe_flags_an_unlabelled_input_faint_text_and_skipped_headings_but_passes_a_clean_page() {
    let Some(browser) = Browser::start().await else { return };
    let base = serve_pages().await;

    browser.goto(&format!("{base}/bad")).await;
    let Some(violations) = browser.axe().await else { return };
    let found =
        |id: &str| violations.iter().find(|v| v.id == id).unwrap_or_else(|| panic!("no {id} in {violations:#?}"));
    let label = found("label");
    assert_eq!(label.impact.as_deref(), Some("critical"));
    assert_eq!(targets(label), ["#q"]);
    assert_eq!(targets(found("color-contrast")), ["#faint"]);
    assert!(found("heading-order").is_blocking(), "skipped heading levels fail a page");
    let mut blocking: Vec<&str> = blocking_violations(&violations).iter().map(|v| v.id.as_str()).collect();
    blocking.sort_unstable();
    assert_eq!(blocking, ["color-contrast", "heading-order", "label"]);
    browser.screenshot("harness-bad").await;

    browser.goto(&format!("{base}/good")).await;
    let violations = browser.axe().await.expect("axe ran on the bad page, so it runs here");
    assert!(violations.is_empty(), "the clean page has violations:\n{violations:#?}");
    browser.assert_no_serious_axe("the harness's clean page").await;
    browser.close().await;
}
