//! The page shell every page shares: the document head with its one stylesheet, a skip link,
//! the site's header and navigation, the `main` landmark and the page's scripts. maud escapes
//! every value it interpolates; nothing here writes raw HTML from data.

use maud::{html, Markup, DOCTYPE};

/// One site's frame: its name, home and navigation links (`href`, label), e.g. the shop's
/// catalog and cart.
pub struct Site {
    pub name: &'static str,
    pub home: &'static str,
    pub nav: &'static [(&'static str, &'static str)],
    /// The site's script under `/assets/` (loaded deferred), if it has one.
    pub script: Option<&'static str>,
}

/// A whole page: `title` (also the `h1` unless the page writes its own), the site it belongs
/// to, which navigation link is current (its `href`), and the content of `main`.
pub fn page(site: &Site, title: &str, current: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (site.name) }
                link rel="stylesheet" href=(super::assets::href("till.css"));
                @if let Some(script) = site.script {
                    script src=(super::assets::href(script)) defer {}
                }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    a.brand href=(site.home) { (site.name) }
                    nav aria-label="Main" {
                        ul {
                            @for (href, label) in site.nav {
                                li {
                                    @if *href == current {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                }
                main #main tabindex="-1" { (main) }
            }
        }
    }
}

/// A page that only says something: an error, a missing order.
pub fn message(site: &Site, title: &str, text: &str) -> Markup {
    page(
        site,
        title,
        "",
        html! {
            h1 { (title) }
            p.notice role="alert" { (text) }
            p { a href=(site.home) { "Back to " (site.name) } }
        },
    )
}

/// A hidden CSRF field for a form (see `csrf`).
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(super::csrf::FIELD) value=(token); }
}
