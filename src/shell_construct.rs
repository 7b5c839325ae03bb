//! Whether the lines typed (or piped) so far make a whole shell command, or a construct is still
//! open: a quote, a trailing backslash or operator (`|`, `&&`, `||`), `if` without `fi`, a
//! `for`/`while`/`until` without `done`, `case` without `esac`, `{` without `}`, `(` without
//! `)`. The shell client collects lines until the command is whole and sends it as one request,
//! since every request is a `sh -c` of its own.
//!
//! Here-documents (`<<EOF`, `<<-EOF`, `<<'EOF'`) are open until their delimiter line.
//!
//! This is a reading of POSIX shell syntax good enough to tell "more is coming" from "done",
//! not a parser: a construct closed out of order (`fi` with no `if`) counts as whole and the
//! server's shell reports the error.

/// What the text still needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completeness {
    /// A whole command: send it.
    Complete,
    /// More lines are needed.
    Open(Unfinished),
}

/// What keeps a command open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfinished {
    /// A quote (`'`, `"` or a backquote) that is not closed.
    Quote(char),
    /// A backslash at the end of the text: the line goes on.
    Backslash,
    /// `|`, `&&` or `||` with no command after it yet.
    Operator,
    /// A compound command waiting for this word (`fi`, `done`, `esac`, `}`, `)`).
    Construct(&'static str),
    /// A here-document whose delimiter line has not come.
    HereDocument,
}

/// A here-document whose body starts at the next line.
struct HereDocument {
    delimiter: String,
    /// `<<-`: leading tabs of the body's lines (and of the delimiter line) are dropped.
    strip_tabs: bool,
}

type Chars<'t> = std::iter::Peekable<std::str::Chars<'t>>;

/// Reads a here-document's delimiter word after `<<` or `<<-`, quotes removed.
fn here_document(chars: &mut Chars<'_>) -> HereDocument {
    let strip_tabs = chars.next_if_eq(&'-').is_some();
    while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
    let mut delimiter = String::new();
    while let Some(c) = chars.next_if(|c| !c.is_whitespace() && !";&|<>()".contains(*c)) {
        match c {
            '\'' | '"' => {}
            '\\' => delimiter.extend(chars.next()),
            _ => delimiter.push(c),
        }
    }
    HereDocument {
        delimiter,
        strip_tabs,
    }
}

/// Consumes the bodies of `pending` here-documents, which start here (after a newline); false
/// when the text ends before a delimiter line.
fn skip_here_documents(chars: &mut Chars<'_>, pending: &mut Vec<HereDocument>) -> bool {
    for document in pending.drain(..) {
        loop {
            if chars.peek().is_none() {
                return false;
            }
            let mut line = String::new();
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
                line.push(c);
            }
            let line = if document.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                &line
            };
            if line == document.delimiter {
                break;
            }
        }
    }
    true
}

/// A compound command that is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opened {
    If,
    Loop,
    Case,
    Brace,
    Paren,
}

impl Opened {
    /// The word that closes it.
    fn closer(self) -> &'static str {
        match self {
            Opened::If => "fi",
            Opened::Loop => "done",
            Opened::Case => "esac",
            Opened::Brace => "}",
            Opened::Paren => ")",
        }
    }
}

/// Reads shell text word by word, keeping the open constructs.
#[derive(Default)]
struct Reader {
    open: Vec<Opened>,
    word: String,
    /// The word holds a quote or an escape, so it is no reserved word.
    word_quoted: bool,
    /// The next word starts a command (where reserved words count).
    command_position: bool,
    /// An operator wants a command after it.
    operator_pending: bool,
}

impl Reader {
    fn end_word(&mut self) {
        if self.word.is_empty() && !self.word_quoted {
            return;
        }
        self.operator_pending = false;
        let reserved = self.command_position && !self.word_quoted;
        let word = std::mem::take(&mut self.word);
        self.word_quoted = false;
        self.command_position = false;
        if !reserved {
            return;
        }
        match word.as_str() {
            "if" => self.push(Opened::If, true),
            "while" | "until" => self.push(Opened::Loop, true),
            // The loop's variable and word list follow; `do` comes after `;` or a newline.
            "for" | "select" => self.push(Opened::Loop, false),
            "case" => self.push(Opened::Case, false),
            "{" => self.push(Opened::Brace, true),
            "then" | "else" | "elif" | "do" | "!" => self.command_position = true,
            "fi" => self.close(Opened::If),
            "done" => self.close(Opened::Loop),
            "esac" => self.close(Opened::Case),
            "}" => self.close(Opened::Brace),
            _ => {}
        }
    }

    fn push(&mut self, opened: Opened, command_follows: bool) {
        self.open.push(opened);
        self.command_position = command_follows;
    }

    fn close(&mut self, opened: Opened) {
        if self.open.last() == Some(&opened) {
            self.open.pop();
        }
    }

    /// A control operator or a newline: the next word starts a command.
    fn separator(&mut self) {
        self.end_word();
        self.command_position = true;
    }
}

/// Tells whether `text` is a whole command.
pub fn completeness(text: &str) -> Completeness {
    let mut reader = Reader {
        command_position: true,
        ..Reader::default()
    };
    let mut chars = text.chars().peekable();
    let mut here_documents = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                reader.word_quoted = true;
                if !chars.by_ref().any(|c| c == '\'') {
                    return Completeness::Open(Unfinished::Quote('\''));
                }
            }
            '"' | '`' => {
                reader.word_quoted = true;
                let mut closed = false;
                while let Some(inner) = chars.next() {
                    match inner {
                        '\\' => {
                            chars.next();
                        }
                        _ if inner == c => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                }
                if !closed {
                    return Completeness::Open(Unfinished::Quote(c));
                }
            }
            '\\' => match chars.next() {
                None => return Completeness::Open(Unfinished::Backslash),
                // A line continuation: the word goes on.
                Some('\n') => {}
                Some(_) => reader.word_quoted = true,
            },
            '#' if reader.word.is_empty() && !reader.word_quoted => {
                for inner in chars.by_ref() {
                    if inner == '\n' {
                        reader.separator();
                        if !skip_here_documents(&mut chars, &mut here_documents) {
                            return Completeness::Open(Unfinished::HereDocument);
                        }
                        break;
                    }
                }
            }
            ' ' | '\t' => reader.end_word(),
            '\n' => {
                reader.separator();
                if !skip_here_documents(&mut chars, &mut here_documents) {
                    return Completeness::Open(Unfinished::HereDocument);
                }
            }
            ';' => reader.separator(),
            '<' if chars.next_if_eq(&'<').is_some() => {
                reader.end_word();
                // `<<<` is a here-string: one word, no body. Inside parentheses `<<` is taken
                // for arithmetic's shift (`$((1 << 4))`), not a here-document.
                let in_parentheses = reader.open.last() == Some(&Opened::Paren);
                if chars.next_if_eq(&'<').is_none() && !in_parentheses {
                    here_documents.push(here_document(&mut chars));
                }
            }
            '&' | '|' => {
                reader.separator();
                let doubled = chars.next_if_eq(&c).is_some();
                // `&` alone ends a command; `|`, `||` and `&&` want another.
                if c == '|' || doubled {
                    reader.operator_pending = true;
                }
            }
            '(' => {
                reader.separator();
                reader.open.push(Opened::Paren);
            }
            ')' => {
                reader.separator();
                // Otherwise a case pattern's `)`.
                reader.close(Opened::Paren);
            }
            '<' | '>' => reader.end_word(),
            _ => reader.word.push(c),
        }
    }
    reader.end_word();
    if !here_documents.is_empty() {
        return Completeness::Open(Unfinished::HereDocument);
    }
    if let Some(opened) = reader.open.last() {
        return Completeness::Open(Unfinished::Construct(opened.closer()));
    }
    if reader.operator_pending {
        return Completeness::Open(Unfinished::Operator);
    }
    Completeness::Complete
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completeness_table() {
        use Completeness::{Complete, Open};
        let table: &[(&str, Completeness)] = &[
            ("ls -l", Complete),
            ("", Complete),
            ("echo 'a b'", Complete),
            ("echo 'a", Open(Unfinished::Quote('\''))),
            ("echo \"a \\\" b", Open(Unfinished::Quote('"'))),
            ("echo \"a\nb\"", Complete),
            ("echo `date", Open(Unfinished::Quote('`'))),
            ("echo a \\", Open(Unfinished::Backslash)),
            ("echo a \\\nb", Complete),
            ("ls |", Open(Unfinished::Operator)),
            ("ls |\n wc -l", Complete),
            ("true &&", Open(Unfinished::Operator)),
            ("false ||", Open(Unfinished::Operator)),
            ("sleep 1 &", Complete),
            ("for i in 1 2 3", Open(Unfinished::Construct("done"))),
            ("for i in 1 2 3\ndo", Open(Unfinished::Construct("done"))),
            ("for i in 1 2 3\ndo\n echo $i\ndone", Complete),
            ("for i in 1 2; do echo $i; done", Complete),
            ("for done in a; do echo $done; done", Complete),
            ("while true; do", Open(Unfinished::Construct("done"))),
            ("if true; then", Open(Unfinished::Construct("fi"))),
            (
                "if true; then\n if false; then :; fi",
                Open(Unfinished::Construct("fi")),
            ),
            ("if true; then echo yes; else echo no; fi", Complete),
            ("echo if then fi", Complete),
            ("echo done", Complete),
            ("echo 'if'", Complete),
            ("case $x in", Open(Unfinished::Construct("esac"))),
            ("case $x in a) echo a;; (b) echo b;; esac", Complete),
            ("f() {", Open(Unfinished::Construct("}"))),
            ("f() { echo hi; }", Complete),
            ("(cd /tmp", Open(Unfinished::Construct(")"))),
            ("echo $(date", Open(Unfinished::Construct(")"))),
            ("echo $(date)", Complete),
            ("echo $((1 + 2))", Complete),
            ("ls # comment with 'quote", Complete),
            ("echo a#b 'c", Open(Unfinished::Quote('\''))),
            ("fi", Complete),
            ("echo \\'", Complete),
            (
                "if true; then echo 'a;\nfi'",
                Open(Unfinished::Construct("fi")),
            ),
            ("cat <<EOF", Open(Unfinished::HereDocument)),
            ("cat <<EOF\nif 'x\n", Open(Unfinished::HereDocument)),
            ("cat <<EOF\nif 'x\nEOF", Complete),
            ("cat <<EOF\nif 'x\nEOF\n", Complete),
            ("cat <<'END' | wc -l\n$a\n END\nEND", Complete),
            ("cat <<-END\n\tbody\n\tEND", Complete),
            ("cat <<END\n\tEND", Open(Unfinished::HereDocument)),
            ("cat <<A <<B\na\nA\nb", Open(Unfinished::HereDocument)),
            ("cat <<A <<B\na\nA\nb\nB", Complete),
            (
                "if true; then cat <<E\nfi\nE",
                Open(Unfinished::Construct("fi")),
            ),
            ("if true; then cat <<E\nfi\nE\nfi", Complete),
            ("cat <<< 'here string'", Complete),
            ("cat <<E # note\nx\nE", Complete),
            ("cat <<\\E\nx\nE", Complete),
            ("echo $((1<<4))", Complete),
            ("echo $(( 1 << 4 ))", Complete),
        ];
        for &(text, expected) in table {
            assert_eq!(completeness(text), expected, "{text:?}");
        }
    }
}
