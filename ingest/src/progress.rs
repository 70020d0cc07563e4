//! Progress of a run: bars for a person, JSON lines for a supervising process.

/// How an ingest reports its progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProgressMode {
    #[default]
    Off,
    /// indicatif bars on stderr, for a person at a terminal.
    Bars,
    /// One `{"progress": {"stage", "done", "total"}}` line on stderr at most twice a
    /// second per stage, for a process that runs the ingest (the server's jobs).
    Json,
}

impl std::str::FromStr for ProgressMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "bars" => Ok(Self::Bars),
            "json" => Ok(Self::Json),
            other => Err(format!("'{other}' is not a progress mode (off, bars, json)")),
        }
    }
}

/// Renders a bar's state as a JSON line instead of drawing it.
#[derive(Debug, Default)]
struct JsonProgress {
    /// The last line written: indicatif may draw the same state twice.
    last: std::sync::Mutex<String>,
}

impl JsonProgress {
    /// The template's `{prefix}|{pos}|{len}` as a JSON line on stderr (indicatif expands tabs).
    fn emit(&self, line: &str) {
        let mut parts = line.trim().split('|');
        let (Some(stage), Some(done), Some(total)) = (parts.next(), parts.next(), parts.next()) else {
            return;
        };
        let (Ok(done), Ok(total)) = (done.trim().parse::<u64>(), total.trim().parse::<u64>()) else { return };
        let doc = serde_json::json!({"progress": {"stage": stage.trim(), "done": done, "total": total}})
            .to_string();
        if let Ok(mut last) = self.last.lock() {
            if *last == doc {
                return;
            }
            last.clone_from(&doc);
        }
        eprintln!("{doc}");
    }
}

impl indicatif::TermLike for JsonProgress {
    fn width(&self) -> u16 {
        200
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.emit(s);
        Ok(())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.emit(s);
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A progress bar for one stage of `len` steps; `template` styles it on a terminal.
pub fn progress_bar(
    mode: ProgressMode,
    len: u64,
    what: &str,
    template: Option<&str>,
) -> indicatif::ProgressBar {
    match mode {
        ProgressMode::Off => indicatif::ProgressBar::hidden(),
        ProgressMode::Json => {
            let target = indicatif::ProgressDrawTarget::term_like_with_hz(Box::<JsonProgress>::default(), 2);
            let bar = indicatif::ProgressBar::with_draw_target(Some(len), target);
            if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix}|{pos}|{len}") {
                bar.set_style(style);
            }
            bar.set_prefix(what.to_owned());
            bar
        }
        ProgressMode::Bars => {
            let bar = indicatif::ProgressBar::new(len);
            let template = template.unwrap_or("{spinner} {prefix:>10} [{bar:30}] {pos}/{len} {msg}");
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(what.to_owned());
            bar
        }
    }
}
