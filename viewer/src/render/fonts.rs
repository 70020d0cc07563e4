//! Fonts for the text bevy's built-in font cannot show. Natively the system's
//! sans-serif (fontconfig) covers every script. A page cannot list the system's fonts,
//! so the browser fetches the fonts `cim-server` ships beside the viewer, and only once
//! some on-screen text needs them: `ui-sans.ttf` (DejaVu Sans: Latin with accents,
//! Greek, Cyrillic, Hebrew, Arabic) at the first non-ASCII character, `ui-cjk.ttc`
//! (WenQuanYi Micro Hei: Chinese, Japanese kana, Korean) at the first CJK one. The
//! first becomes the UI's font family, the second the fallback for CJK scripts.

use bevy::prelude::*;
use parley::fontique::Script;

/// The UI font: the system's sans-serif (found through fontconfig), which covers
/// street names in Finnish, Hebrew or Chinese where the built-in ASCII font cannot.
/// A page cannot list the system's fonts, so the browser build starts with bevy's
/// built-in font and switches to the server's fonts once some text needs them
/// (below).
pub fn ui_font(size: f32) -> TextFont {
    TextFont {
        #[cfg(not(target_arch = "wasm32"))]
        font: bevy::text::FontSource::SansSerif,
        font_size: bevy::text::FontSize::Px(size),
        ..default()
    }
}

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
        // Natively the system fonts are already the UI's ([`ui_font`]).
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
    /// How many of `added` the UI text currently uses (family and fallback).
    in_use: usize,
    /// Frames spent waiting for the text engine to know the added families.
    waited: u32,
    /// The font assets: a dropped handle unloads the font, and bevy then rebuilds its
    /// font collection without it.
    handles: Vec<Handle<Font>>,
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
                let handle = fonts.add(Font::from_bytes(bytes));
                state.handles.push(handle);
                state.added.push(font);
            }
            Some(Err(e)) => problems.report(format!("font {}: {e}", font.file)),
        }
    }
    state.pending = still;
    // Sans first, CJK after, whatever order they arrived in.
    state.added.sort_by_key(|f| f.file != SANS.file);
    if state.added.len() == state.in_use {
        if let Some(first) = state.added.first().filter(|_| state.in_use > 0) {
            // Text spawned since (the sensor kinds' rows) takes the family too.
            let family = bevy::text::FontSource::Family(first.family.into());
            for mut text_font in &mut text_fonts {
                if text_font.font != family {
                    text_font.font = family.clone();
                }
            }
        }
        return;
    }
    // bevy registers a new font asset with the text engine a frame or so later.
    let Some(ids) =
        state.added.iter().map(|f| font_cx.collection.family_id(f.family)).collect::<Option<Vec<_>>>()
    else {
        state.waited += 1;
        if state.waited == 300 {
            let known: Vec<String> = font_cx.collection.family_names().map(str::to_owned).collect();
            let missing: Vec<&str> = state.added.iter().map(|f| f.family).collect();
            problems.report(format!("fonts {missing:?} not registered; the text engine knows {known:?}"));
        }
        return;
    };
    state.waited = 0;
    // The first font becomes the UI's family by name; the CJK font is the text
    // engine's fallback for the scripts it covers, so a line mixing both shapes.
    for (font, id) in state.added.iter().zip(&ids) {
        if font.file == CJK.file {
            for script in CJK_SCRIPTS {
                font_cx.collection.append_fallbacks(Script::from_bytes(script), std::iter::once(*id));
            }
        }
    }
    state.in_use = state.added.len();
    let families: Vec<&str> = state.added.iter().map(|f| f.family).collect();
    super::platform::report(&format!("UI fonts ready: {}", families.join(", ")));
    let family = bevy::text::FontSource::Family(families[0].into());
    for mut text_font in &mut text_fonts {
        // Every text re-lays out with the new fonts (even one already in that family).
        text_font.font = family.clone();
    }
}

/// ISO 15924 codes of the scripts WenQuanYi Micro Hei stands in for.
const CJK_SCRIPTS: [[u8; 4]; 5] = [*b"Hani", *b"Hira", *b"Kana", *b"Hang", *b"Bopo"];

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
