//! The web gallery's HTML, rendered on the server: every value that came from a person (a
//! user name, a message) is escaped; scripts and styles are files of their own (`assets`), so
//! the pages' Content-Security-Policy forbids inline code.

/// Escapes text for an HTML element or a quoted attribute.
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

fn page(title: &str, head: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/web/assets/ferry.css">
{head}
</head>
<body>
{body}
</body>
</html>
"#,
        title = escape(title),
    )
}

/// The sign-in form: what `/` shows without a session (never any data).
pub fn sign_in(message: Option<&str>) -> String {
    let message = message.map(|m| format!(r#"<p class="error" role="alert">{}</p>"#, escape(m))).unwrap_or_default();
    let body = format!(
        r#"<main class="signin">
<h1>Ferry</h1>
<p>Sign in with the link your administrator gave you (<code>ferry admin web-link --user NAME</code>), or with one of your API tokens.</p>
{message}
<form method="post" action="/web/signin">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Sign in</button>
</form>
</main>"#
    );
    page("Ferry — sign in", "", &body)
}

/// What a sign-in link opens: the account it signs in to, and a button that spends the link
/// with a POST (nothing happens without the click).
pub fn confirm_link(link: &str, user_name: &str) -> String {
    let body = format!(
        r#"<main class="signin">
<h1>Ferry</h1>
<p>Sign in as <strong>{user}</strong>?</p>
<form method="post" action="/web/signin" id="link-form">
<input type="hidden" name="link" value="{link}">
<button type="submit" autofocus>Sign in as {user}</button>
</form>
</main>"#,
        link = escape(link),
        user = escape(user_name),
    );
    page("Ferry — sign in", "", &body)
}

/// The gallery page of a signed-in user; the script reads the CSRF token from its meta tag
/// and sends it with every change.
pub fn gallery(user_name: &str, csrf: &str) -> String {
    let head = format!(
        r#"<meta name="ferry-csrf" content="{csrf}">
<script src="/web/assets/gallery.js" defer></script>"#,
        csrf = escape(csrf),
    );
    let body = format!(
        r##"<header class="bar">
<h1>Ferry</h1>
<nav aria-label="Views">
<a href="#timeline" id="nav-timeline">Timeline</a>
<a href="#devices" id="nav-devices">Devices</a>
</nav>
<button type="button" id="upload-button">Upload</button>
<input type="file" id="upload-input" multiple hidden>
<span class="who">{user}</span>
<form method="post" action="/web/signout" id="signout">
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit">Sign out</button>
</form>
</header>
<section id="timeline-view" aria-label="Timeline">
<div class="filters">
<label>Source <select id="filter-source"><option value="">All</option></select></label>
<label>Type <select id="filter-type"><option value="">All</option><option value="image">Photos</option><option value="video">Videos</option><option value="other">Other</option></select></label>
</div>
<ol id="uploads" class="uploads" aria-label="Uploads"></ol>
<div id="timeline" aria-live="polite"></div>
<p id="timeline-end" class="muted" role="status"></p>
</section>
<section id="devices-view" aria-label="Devices and usage" hidden>
<h2>Usage</h2>
<dl id="usage" class="facts"></dl>
<h2>Devices</h2>
<div id="devices"></div>
</section>
<div id="drop-hint" class="drop-hint" hidden>Drop files to upload</div>
<dialog id="viewer" aria-label="Viewer">
<div class="viewer-bar">
<button type="button" id="viewer-prev" aria-label="Previous">←</button>
<button type="button" id="viewer-next" aria-label="Next">→</button>
<span id="viewer-title"></span>
<a id="viewer-download" download>Download</a>
<button type="button" id="viewer-delete">Delete</button>
<button type="button" id="viewer-close" aria-label="Close">✕</button>
</div>
<div id="viewer-stage"></div>
<dl id="viewer-facts" class="facts"></dl>
</dialog>"##,
        user = escape(user_name),
        csrf = escape(csrf),
    );
    page("Ferry", &head, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_people_typed_cannot_become_markup() {
        assert_eq!(escape(r#"<script>"a"&'b'</script>"#), "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/script&gt;");
        let page = gallery("<img src=x onerror=alert(1)>", "t");
        assert!(!page.contains("<img src=x"));
        assert!(sign_in(Some("<b>no</b>")).contains("&lt;b&gt;no&lt;/b&gt;"));
    }
}
