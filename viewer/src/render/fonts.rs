//! Fonts for the text bevy's built-in font cannot show. Natively the system's
//! sans-serif (fontconfig) covers every script. A page cannot list the system's fonts,
//! so the browser fetches the fonts `cim-server` ships beside the viewer, and only once
//! some on-screen text needs them: `ui-sans.ttf` (DejaVu Sans: Latin with accents,
//! Greek, Cyrillic, Hebrew, Arabic) at the first non-ASCII character, `ui-cjk.ttc`
//! (WenQuanYi Micro Hei: Chinese, Japanese kana, Korean) at the first CJK one. Both
//! then become the UI's sans-serif family, tried in that order.

use bevy::prelude::*;

/// The fonts a piece of text needs beyond bevy's built-in (ASCII) font.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FontNeed {
    pub sans: bool,
    pub cjk: bool,
}

/// CJK ideographs and punctuation, kana, Hangul, full-width forms: what WenQuanYi
/// Micro Hei covers and DejaVu Sans does not.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF | 0x3000..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFFEF
        | 0x20000..=0x2FA1F)
}

pub fn needs(text: &str) -> FontNeed {
    let mut need = FontNeed::default();
    for c in text.chars().filter(|c| !c.is_ascii()) {
        need.sans = true;
        need.cjk |= is_cjk(c);
        if need.cjk {
            break;
        }
    }
    need
}

/// A font the server ships: its file under `/viewer/` and its family name.
pub struct WebFont {
    pub file: &'static str,
    pub family: &'static str,
}

pub const SANS: WebFont = WebFont { file: "ui-sans.ttf", family: "DejaVu Sans" };
pub const CJK: WebFont = WebFont { file: "ui-cjk.ttc", family: "WenQuanYi Micro Hei" };

pub struct FontsPlugin;

impl Plugin for FontsPlugin {
    fn build(&self, app: &mut App) {
        // Natively the system fonts are already the UI's (hud::ui_font).
        if cfg!(target_arch = "wasm32") {
            app.init_resource::<WebFonts>().add_systems(Update, (request_fonts, receive_fonts).chain());
        }
    }
}

#[derive(Resource, Default)]
struct WebFonts {
    requested: FontNeed,
    pending: Vec<(&'static WebFont, super::platform::Pending<Vec<u8>>)>,
    /// Fetched and added as assets, in family order; waiting for bevy to register them.
    added: Vec<&'static WebFont>,
    /// How many of `added` the sans-serif family currently lists.
    in_use: usize,
}

fn request_fonts(
    texts: Query<&Text, Changed<Text>>,
    options: Res<super::ViewerOptions>,
    mut state: ResMut<WebFonts>,
) {
    if state.requested.sans && state.requested.cjk {
        return;
    }
    let mut need = state.requested;
    for text in &texts {
        let n = needs(&text.0);
        need.sans |= n.sans;
        need.cjk |= n.cjk;
    }
    let base = options.server.trim_end_matches('/').to_owned();
    for (wanted, already, font) in
        [(need.sans, state.requested.sans, &SANS), (need.cjk, state.requested.cjk, &CJK)]
    {
        if wanted && !already {
            let url = format!("{base}/viewer/{}", font.file);
            state.pending.push((font, super::platform::fetch_then(url, Ok)));
        }
    }
    state.requested = need;
}

fn receive_fonts(
    mut state: ResMut<WebFonts>,
    mut fonts: ResMut<Assets<Font>>,
    mut font_cx: ResMut<bevy::text::FontCx>,
    mut problems: ResMut<super::Problems>,
    mut text_fonts: Query<&mut TextFont>,
) {
    let mut still = Vec::new();
    for (font, pending) in std::mem::take(&mut state.pending) {
        match pending.take() {
            None => still.push((font, pending)),
            Some(Ok(bytes)) => {
                fonts.add(Font::from_bytes(bytes));
                state.added.push(font);
            }
            Some(Err(e)) => problems.report(format!("font {}: {e}", font.file)),
        }
    }
    state.pending = still;
    // Sans first, CJK after, whatever order they arrived in.
    state.added.sort_by_key(|f| f.file != SANS.file);
    if state.added.len() == state.in_use {
        if state.in_use > 0 {
            // Text spawned since (the sensor kinds' rows) takes the family too.
            for mut text_font in &mut text_fonts {
                if !matches!(text_font.font, bevy::text::FontSource::SansSerif) {
                    text_font.font = bevy::text::FontSource::SansSerif;
                }
            }
        }
        return;
    }
    // bevy registers a new font asset with the text engine a frame or so later.
    let Some(ids) =
        state.added.iter().map(|f| font_cx.collection.family_id(f.family)).collect::<Option<Vec<_>>>()
    else {
        return;
    };
    font_cx.collection.set_generic_families(parley::GenericFamily::SansSerif, ids.into_iter());
    state.in_use = state.added.len();
    let families: Vec<&str> = state.added.iter().map(|f| f.family).collect();
    super::platform::report(&format!("UI fonts ready: {}", families.join(", ")));
    for mut text_font in &mut text_fonts {
        // Every text re-lays out with the new family (even those already sans-serif).
        text_font.font = bevy::text::FontSource::SansSerif;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_needs_nothing_accents_need_sans_and_hanzi_need_cjk() {
        assert_eq!(needs("helsinki #42\nbuilding: yes"), FontNeed::default());
        assert_eq!(needs("name: Kauppatori, Södra kajen"), FontNeed { sans: true, cjk: false });
        assert_eq!(needs("name: שוק"), FontNeed { sans: true, cjk: false });
        assert_eq!(needs("name: 解放碑"), FontNeed { sans: true, cjk: true });
        assert_eq!(needs("ｶﾀｶﾅ"), FontNeed { sans: true, cjk: true }, "half-width kana");
        assert_eq!(needs("서울"), FontNeed { sans: true, cjk: true });
    }
}
