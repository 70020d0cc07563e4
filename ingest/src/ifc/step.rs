//! A streaming reader for ISO 10303-21 ("STEP physical file") exchange structures,
//! the encoding of IFC 2x3, IFC4 and IFC4x3 files.
//!
//! [`StepReader`] reads one statement at a time from any `BufRead`, so the bytes of a
//! file are never held twice; each data instance comes out as an [`Instance`] with
//! its attributes as typed [`StepValue`]s. Strings are decoded from the standard's
//! escapes (`\X2\…\X0\` UTF-16 for Chinese names, `\X4\`, `\X\hh`, `\S\`, `''`) into
//! UTF-8. Every error names the line and, once known, the instance number.

use std::fmt;
use std::io::BufRead;
use std::sync::Arc;

/// One attribute value of an instance.
#[derive(Debug, Clone, PartialEq)]
pub enum StepValue {
    /// `$`: not given.
    Null,
    /// `*`: derived from other attributes in a subtype.
    Derived,
    Integer(i64),
    Real(f64),
    String(String),
    /// `.ENUM.` (also `.T.`/`.F.`/`.U.` booleans and logicals), without the dots.
    Enum(String),
    /// `#123`.
    Ref(u64),
    /// `"0ABC"`: hex digits as written.
    Binary(String),
    List(Vec<StepValue>),
    /// `IFCLABEL('x')`: a value of a defined type, e.g. in property values.
    Typed(Arc<str>, Box<StepValue>),
}

impl StepValue {
    pub fn as_ref(&self) -> Option<u64> {
        match self {
            Self::Ref(r) => Some(*r),
            _ => None,
        }
    }

    /// Integers and reals as f64, looking through a defined type.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Real(r) => Some(*r),
            Self::Integer(i) => Some(*i as f64),
            Self::Typed(_, v) => v.as_f64(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            Self::Typed(_, v) => v.as_str(),
            _ => None,
        }
    }

    pub fn as_enum(&self) -> Option<&str> {
        match self {
            Self::Enum(e) => Some(e),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[StepValue]> {
        match self {
            Self::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
}

/// One data instance: `#id = CLASS(attributes);`. Complex instances
/// (`#id = (A(...) B(...));`) keep the first partial type's name and all
/// attributes in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: u64,
    /// Upper-case class name, shared between instances of one class.
    pub class: Arc<str>,
    pub attributes: Vec<StepValue>,
    /// The line the instance starts on, for messages.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepError {
    pub line: usize,
    pub instance: Option<u64>,
    pub message: String,
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.instance {
            Some(id) => write!(f, "line {}, #{id}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

impl std::error::Error for StepError {}

/// The header section's facts we use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepHeader {
    /// Schema identifiers from `FILE_SCHEMA`, upper-case (e.g. `IFC4`, `IFC2X3`).
    pub schemas: Vec<String>,
    /// `FILE_NAME`'s originating system, when given.
    pub originating_system: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Start,
    Header,
    BetweenSections,
    Data,
    Done,
}

/// Reads statements one at a time. Call [`StepReader::header`] first, then
/// [`StepReader::next_instance`] until it returns `Ok(None)`.
pub struct StepReader<R> {
    input: R,
    line: usize,
    section: Section,
    statement: Vec<u8>,
    classes: std::collections::HashMap<String, Arc<str>>,
    header: StepHeader,
}

impl<R: BufRead> StepReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: 1,
            section: Section::Start,
            statement: Vec::with_capacity(256),
            classes: std::collections::HashMap::new(),
            header: StepHeader::default(),
        }
    }

    fn error(&self, line: usize, instance: Option<u64>, message: impl Into<String>) -> StepError {
        StepError { line, instance, message: message.into() }
    }

    /// Reads the next statement up to its `;` (outside strings and comments) into
    /// `self.statement`, without the `;`. Returns the line it started on, or `None`
    /// at the end of input.
    fn read_statement(&mut self) -> Result<Option<usize>, StepError> {
        self.statement.clear();
        let mut start_line = None;
        let mut in_string = false;
        let mut in_comment = false;
        let mut previous = 0u8;
        loop {
            let buf = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error(self.line, None, format!("read failed: {e}"))),
            };
            if buf.is_empty() {
                if in_string {
                    return Err(self.error(
                        start_line.unwrap_or(self.line),
                        None,
                        "file ends inside a string (truncated?)",
                    ));
                }
                if self.statement.iter().any(|b| !b.is_ascii_whitespace()) {
                    return Err(self.error(
                        start_line.unwrap_or(self.line),
                        None,
                        "file ends inside a statement (truncated?)",
                    ));
                }
                return Ok(None);
            }
            let mut consumed = 0;
            let mut finished = false;
            for &b in buf {
                consumed += 1;
                if b == b'\n' {
                    self.line += 1;
                }
                if in_comment {
                    if previous == b'*' && b == b'/' {
                        in_comment = false;
                        previous = 0;
                    } else {
                        previous = b;
                    }
                    continue;
                }
                if in_string {
                    // A doubled quote is an escaped quote; the next byte decides.
                    self.statement.push(b);
                    if b == b'\'' {
                        in_string = false;
                    }
                    previous = b;
                    continue;
                }
                match b {
                    b'\'' => {
                        in_string = true;
                        self.statement.push(b);
                    }
                    b'*' if previous == b'/' => {
                        self.statement.pop();
                        if self.statement.iter().all(u8::is_ascii_whitespace) {
                            start_line = None;
                        }
                        in_comment = true;
                        previous = 0;
                        continue;
                    }
                    b';' => {
                        finished = true;
                        break;
                    }
                    b'\r' | b'\n' => {}
                    _ => {
                        if start_line.is_none() && !b.is_ascii_whitespace() {
                            start_line = Some(self.line);
                        }
                        self.statement.push(b);
                    }
                }
                previous = b;
            }
            self.input.consume(consumed);
            if finished {
                return Ok(Some(start_line.unwrap_or(self.line)));
            }
        }
    }

    /// Reads up to the start of the data section.
    pub fn header(&mut self) -> Result<StepHeader, StepError> {
        while self.section != Section::Data {
            let Some(line) = self.read_statement()? else {
                return Err(self.error(self.line, None, "no DATA section (not a STEP file, or truncated)"));
            };
            let text = String::from_utf8_lossy(&self.statement).trim().to_owned();
            match (self.section, text.as_str()) {
                (Section::Start, "ISO-10303-21") => self.section = Section::BetweenSections,
                (Section::Start, _) => {
                    return Err(self.error(
                        line,
                        None,
                        "does not start with ISO-10303-21; (not an IFC/STEP file)",
                    ));
                }
                (Section::BetweenSections, "HEADER") => self.section = Section::Header,
                (Section::BetweenSections, "DATA") => self.section = Section::Data,
                (Section::BetweenSections, t) if t.starts_with("DATA") => self.section = Section::Data,
                (Section::Header, "ENDSEC") => self.section = Section::BetweenSections,
                (Section::Header, _) => {
                    let mut parser = Parser { bytes: &self.statement, at: 0, line, id: None };
                    let name = parser.keyword();
                    parser.skip_ws();
                    if let Ok(StepValue::List(args)) = parser.list(&mut self.classes) {
                        match name.as_str() {
                            "FILE_SCHEMA" => {
                                let mut schemas = Vec::new();
                                collect_strings(&args, &mut schemas);
                                self.header.schemas =
                                    schemas.into_iter().map(|s| s.to_ascii_uppercase()).collect();
                            }
                            "FILE_NAME" => {
                                self.header.originating_system =
                                    args.get(5).and_then(StepValue::as_str).map(str::to_owned);
                            }
                            _ => {}
                        }
                    }
                }
                (_, t) => {
                    return Err(self.error(line, None, format!("unexpected '{}' between sections", clip(t))));
                }
            }
        }
        Ok(self.header.clone())
    }

    /// The next data instance, or `None` after `ENDSEC` / `END-ISO-10303-21`.
    pub fn next_instance(&mut self) -> Result<Option<Instance>, StepError> {
        if self.section != Section::Data {
            if self.section == Section::Done {
                return Ok(None);
            }
            self.header()?;
        }
        let Some(line) = self.read_statement()? else {
            return Err(self.error(
                self.line,
                None,
                "file ends before the data section's ENDSEC (truncated?)",
            ));
        };
        let mut parser = Parser { bytes: &self.statement, at: 0, line, id: None };
        parser.skip_ws();
        if parser.peek() != Some(b'#') {
            let word = parser.keyword();
            if word == "ENDSEC" {
                self.section = Section::Done;
                return Ok(None);
            }
            return Err(self.error(
                line,
                None,
                format!("expected an instance '#n = ...', found '{}'", clip(&word)),
            ));
        }
        parser.at += 1;
        let id = parser.unsigned().ok_or_else(|| parser.fail("instance number after '#'"))?;
        parser.id = Some(id);
        parser.skip_ws();
        if parser.peek() != Some(b'=') {
            return Err(parser.fail("'=' after the instance number"));
        }
        parser.at += 1;
        parser.skip_ws();
        let (class, attributes) = if parser.peek() == Some(b'(') {
            // Complex instance: a list of partial entity values.
            parser.at += 1;
            let mut first_class = None;
            let mut all = Vec::new();
            loop {
                parser.skip_ws();
                if parser.peek() == Some(b')') {
                    parser.at += 1;
                    break;
                }
                let name = parser.keyword();
                if name.is_empty() {
                    return Err(parser.fail("a partial entity name"));
                }
                parser.skip_ws();
                let StepValue::List(mut args) = parser.list(&mut self.classes)? else {
                    return Err(parser.fail("'(' after the entity name"));
                };
                first_class.get_or_insert(name);
                all.append(&mut args);
            }
            let class = first_class.ok_or_else(|| parser.fail("at least one partial entity"))?;
            (intern(&mut self.classes, &class), all)
        } else {
            let name = parser.keyword();
            if name.is_empty() {
                return Err(parser.fail("an entity name"));
            }
            parser.skip_ws();
            let StepValue::List(args) = parser.list(&mut self.classes)? else {
                return Err(parser.fail("'(' after the entity name"));
            };
            (intern(&mut self.classes, &name), args)
        };
        parser.skip_ws();
        if parser.at < parser.bytes.len() {
            return Err(parser.fail("';' after the instance"));
        }
        Ok(Some(Instance { id, class, attributes, line }))
    }
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

fn collect_strings(values: &[StepValue], out: &mut Vec<String>) {
    for v in values {
        match v {
            StepValue::String(s) => out.push(s.clone()),
            StepValue::List(l) => collect_strings(l, out),
            _ => {}
        }
    }
}

fn intern(classes: &mut std::collections::HashMap<String, Arc<str>>, name: &str) -> Arc<str> {
    if let Some(c) = classes.get(name) {
        return c.clone();
    }
    let c: Arc<str> = Arc::from(name);
    classes.insert(name.to_owned(), c.clone());
    c
}

/// Deepest list nesting accepted; real files use at most a handful.
const MAX_NESTING: usize = 64;

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
    id: Option<u64>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn fail(&self, expected: &str) -> StepError {
        let found = match self.bytes.get(self.at..) {
            Some(rest) if !rest.is_empty() => {
                format!("'{}'", clip(&String::from_utf8_lossy(&rest[..rest.len().min(20)])))
            }
            _ => "the end of the statement".to_owned(),
        };
        StepError {
            line: self.line,
            instance: self.id,
            message: format!("expected {expected}, found {found}"),
        }
    }

    fn keyword(&mut self) -> String {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            self.at += 1;
        }
        String::from_utf8_lossy(&self.bytes[start..self.at]).to_ascii_uppercase()
    }

    fn unsigned(&mut self) -> Option<u64> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.at]).ok()?.parse().ok()
    }

    fn list(
        &mut self,
        classes: &mut std::collections::HashMap<String, Arc<str>>,
    ) -> Result<StepValue, StepError> {
        self.list_at(classes, 0)
    }

    fn list_at(
        &mut self,
        classes: &mut std::collections::HashMap<String, Arc<str>>,
        depth: usize,
    ) -> Result<StepValue, StepError> {
        if depth > MAX_NESTING {
            return Err(self.fail(&format!("at most {MAX_NESTING} nested lists")));
        }
        if self.peek() != Some(b'(') {
            return Err(self.fail("'('"));
        }
        self.at += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b')') {
            self.at += 1;
            return Ok(StepValue::List(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(classes, depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b')') => {
                    self.at += 1;
                    return Ok(StepValue::List(items));
                }
                _ => return Err(self.fail("',' or ')' in a list")),
            }
        }
    }

    fn value(
        &mut self,
        classes: &mut std::collections::HashMap<String, Arc<str>>,
        depth: usize,
    ) -> Result<StepValue, StepError> {
        match self.peek() {
            Some(b'$') => {
                self.at += 1;
                Ok(StepValue::Null)
            }
            Some(b'*') => {
                self.at += 1;
                Ok(StepValue::Derived)
            }
            Some(b'#') => {
                self.at += 1;
                self.unsigned().map(StepValue::Ref).ok_or_else(|| self.fail("an instance number after '#'"))
            }
            Some(b'\'') => self.string(),
            Some(b'"') => {
                self.at += 1;
                let start = self.at;
                while self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
                    self.at += 1;
                }
                let hex = String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned();
                if self.peek() != Some(b'"') {
                    return Err(self.fail("'\"' closing a binary value"));
                }
                self.at += 1;
                Ok(StepValue::Binary(hex))
            }
            Some(b'.') => {
                self.at += 1;
                let word = self.keyword();
                if self.peek() != Some(b'.') || word.is_empty() {
                    return Err(self.fail("an enumeration '.NAME.'"));
                }
                self.at += 1;
                Ok(StepValue::Enum(word))
            }
            Some(b'(') => self.list_at(classes, depth + 1),
            Some(b) if b == b'-' || b == b'+' || b.is_ascii_digit() => self.number(),
            Some(b) if b.is_ascii_alphabetic() => {
                let name = self.keyword();
                self.skip_ws();
                if self.peek() != Some(b'(') {
                    return Err(self.fail(&format!("'(' after the type name {name}")));
                }
                self.at += 1;
                self.skip_ws();
                let inner = self.value(classes, depth + 1)?;
                self.skip_ws();
                if self.peek() != Some(b')') {
                    return Err(self.fail(&format!("')' closing {name}(...)")));
                }
                self.at += 1;
                Ok(StepValue::Typed(intern(classes, &name), Box::new(inner)))
            }
            _ => Err(self.fail("a value")),
        }
    }

    fn number(&mut self) -> Result<StepValue, StepError> {
        let start = self.at;
        let mut real = false;
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.at += 1;
        }
        while let Some(b) = self.peek() {
            match b {
                b'0'..=b'9' => {}
                b'.' | b'E' | b'e' => real = true,
                b'-' | b'+' if matches!(self.bytes.get(self.at - 1), Some(b'E' | b'e')) => {}
                _ => break,
            }
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).map_err(|_| self.fail("a number"))?;
        if real {
            // STEP allows "1." and "1.E-5"; Rust's parser accepts both.
            text.parse::<f64>().map(StepValue::Real).map_err(|_| StepError {
                line: self.line,
                instance: self.id,
                message: format!("'{text}' is not a number"),
            })
        } else {
            text.parse::<i64>().map(StepValue::Integer).map_err(|_| StepError {
                line: self.line,
                instance: self.id,
                message: format!("'{text}' is not an integer"),
            })
        }
    }

    fn string(&mut self) -> Result<StepValue, StepError> {
        self.at += 1;
        let mut raw = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.fail("a closing quote")),
                Some(b'\'') if self.bytes.get(self.at + 1) == Some(&b'\'') => {
                    raw.push(b'\'');
                    self.at += 2;
                }
                Some(b'\'') => {
                    self.at += 1;
                    break;
                }
                Some(b) => {
                    raw.push(b);
                    self.at += 1;
                }
            }
        }
        decode_string(&raw).map(StepValue::String).map_err(|m| StepError {
            line: self.line,
            instance: self.id,
            message: m,
        })
    }
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    std::str::from_utf8(digits).ok().and_then(|s| u32::from_str_radix(s, 16).ok())
}

/// Decodes a STEP string's control directives into UTF-8. Bytes outside them are
/// taken as UTF-8 where valid (many exporters write it raw), else as ISO 8859-1.
pub fn decode_string(raw: &[u8]) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    let mut plain_start = 0;
    let flush = |out: &mut String, bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => out.extend(bytes.iter().map(|&b| char::from(b))),
    };
    while i < raw.len() {
        if raw[i] != b'\\' {
            i += 1;
            continue;
        }
        flush(&mut out, &raw[plain_start..i]);
        let rest = &raw[i..];
        if rest.starts_with(b"\\\\") {
            out.push('\\');
            i += 2;
        } else if rest.starts_with(b"\\X2\\") || rest.starts_with(b"\\X4\\") {
            let width = if rest[2] == b'2' { 4 } else { 8 };
            let body_start = i + 4;
            let end = raw[body_start..]
                .windows(4)
                .position(|w| w == b"\\X0\\")
                .ok_or("a \\X2\\ or \\X4\\ string without its closing \\X0\\")?;
            let body = &raw[body_start..body_start + end];
            if !body.len().is_multiple_of(width) {
                return Err(format!("\\X{}\\ needs groups of {width} hex digits", width / 2));
            }
            let units: Vec<u32> = body
                .chunks(width)
                .map(hex_value)
                .collect::<Option<_>>()
                .ok_or("non-hex digits in an \\X2\\ or \\X4\\ string")?;
            if width == 4 {
                let utf16: Vec<u16> = units.iter().map(|&u| u as u16).collect();
                out.push_str(&String::from_utf16(&utf16).map_err(|_| "invalid UTF-16 in an \\X2\\ string")?);
            } else {
                for u in units {
                    out.push(char::from_u32(u).ok_or("invalid code point in an \\X4\\ string")?);
                }
            }
            i = body_start + end + 4;
        } else if rest.starts_with(b"\\X\\") && rest.len() >= 5 {
            let code = hex_value(&rest[3..5]).ok_or("\\X\\ needs two hex digits")?;
            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            i += 5;
        } else if rest.starts_with(b"\\S\\") && rest.len() >= 4 {
            // Upper half of the current ISO 8859 page; page A (Latin-1) is the default
            // and the only one real IFC exporters use.
            out.push(char::from(rest[3].wrapping_add(128)));
            i += 4;
        } else if rest.len() >= 4 && rest[1] == b'P' && rest[3] == b'\\' {
            // Code page switch \PA\ ... : Latin-1 assumed, see above.
            i += 4;
        } else if rest.starts_with(b"\\N\\") || rest.starts_with(b"\\F\\") {
            i += 3;
        } else {
            // A lone backslash: keep it, as IfcOpenShell does.
            out.push('\\');
            i += 1;
        }
        plain_start = i;
    }
    flush(&mut out, &raw[plain_start..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Result<(StepHeader, Vec<Instance>), StepError> {
        let mut r = StepReader::new(std::io::Cursor::new(text.as_bytes().to_vec()));
        let header = r.header()?;
        let mut all = Vec::new();
        while let Some(i) = r.next_instance()? {
            all.push(i);
        }
        Ok((header, all))
    }

    const SMALL: &str = "ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION(('ViewDefinition [CoordinationView]'),'2;1');\n\
        FILE_NAME('a.ifc','2020-01-01T00:00:00',(''),(''),'x','Exporter 1.0','');\nFILE_SCHEMA(('IFC4'));\nENDSEC;\n\
        DATA;\n/* a comment; with a semicolon */\n#1= IFCCARTESIANPOINT((0.,1.5,-2.E-3));\n\
        #2=IFCWALL('2O2Fr$t4X7Zf8NOew3FLOH',#3,'Wand ''A''; \\X2\\91CD5E86\\X0\\',$,*,.T.,(#1,#2),IFCLABEL('x'),\"0AF\");\n\
        #3=(IFCA(1)IFCB(2.5));\nENDSEC;\nEND-ISO-10303-21;\n";

    #[test]
    fn reads_header_values_and_escapes() {
        let (header, all) = read_all(SMALL).expect("parse");
        assert_eq!(header.schemas, vec!["IFC4"]);
        assert_eq!(header.originating_system.as_deref(), Some("Exporter 1.0"));
        assert_eq!(all.len(), 3);
        assert_eq!(&*all[0].class, "IFCCARTESIANPOINT");
        assert_eq!(all[0].line, 9);
        assert_eq!(
            all[0].attributes[0],
            StepValue::List(vec![StepValue::Real(0.0), StepValue::Real(1.5), StepValue::Real(-0.002)])
        );
        let wall = &all[1];
        assert_eq!(wall.attributes[2].as_str(), Some("Wand 'A'; 重庆"));
        assert_eq!(wall.attributes[3], StepValue::Null);
        assert_eq!(wall.attributes[4], StepValue::Derived);
        assert_eq!(wall.attributes[5], StepValue::Enum("T".into()));
        assert_eq!(wall.attributes[6].as_list().map(<[_]>::len), Some(2));
        assert!(
            matches!(&wall.attributes[7], StepValue::Typed(t, v) if &**t == "IFCLABEL" && v.as_str() == Some("x"))
        );
        assert_eq!(wall.attributes[8], StepValue::Binary("0AF".into()));
        assert_eq!(&*all[2].class, "IFCA");
        assert_eq!(all[2].attributes, vec![StepValue::Integer(1), StepValue::Real(2.5)]);
    }

    #[test]
    fn decodes_every_string_directive() {
        assert_eq!(decode_string(b"\\X\\E4").as_deref(), Ok("ä"));
        assert_eq!(decode_string(b"Stra\\S\\_e").as_deref(), Ok("Straße"));
        assert_eq!(decode_string(b"\\X4\\0001F600\\X0\\!").as_deref(), Ok("😀!"));
        assert_eq!(decode_string(b"a\\\\b").as_deref(), Ok("a\\b"));
        assert_eq!(decode_string("raw ü".as_bytes()).as_deref(), Ok("raw ü"));
        assert!(decode_string(b"\\X2\\91CD").is_err());
        assert!(decode_string(b"\\X2\\91C\\X0\\").is_err());
    }

    #[test]
    fn malformed_input_names_line_and_instance() {
        let truncated = &SMALL[..SMALL.find("#3=").expect("marker") + 8];
        let e = read_all(truncated).expect_err("truncated");
        assert!(e.message.contains("truncated"), "{e}");
        let bad = SMALL.replace("(0.,1.5,-2.E-3)", "(0.,1.5 -2.E-3)");
        let e = read_all(&bad).expect_err("missing comma");
        assert_eq!((e.line, e.instance), (9, Some(1)), "{e}");
        assert!(e.to_string().starts_with("line 9, #1: expected ',' or ')'"), "{e}");
        let e = read_all("HELLO;").expect_err("not step");
        assert!(e.message.contains("ISO-10303-21"), "{e}");
        let e = read_all(&SMALL.replace("#2=IFCWALL", "#2 IFCWALL")).expect_err("no =");
        assert_eq!(e.instance, Some(2), "{e}");
        let e = read_all(&SMALL.replace("'x'", "'x")).expect_err("open string");
        assert!(e.message.contains("string") || e.message.contains("expected"), "{e}");
        let deep = SMALL
            .replace("#3=(IFCA(1)IFCB(2.5))", &format!("#3=IFCA({}1{})", "(".repeat(100), ")".repeat(100)));
        let e = read_all(&deep).expect_err("deep");
        assert!(e.message.contains("nested"), "{e}");
    }
}
