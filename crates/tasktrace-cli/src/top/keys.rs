//! Keys typed at the live view, read from standard input (a terminal in raw mode) by this
//! module, and a closed terminal told apart from a quiet one.
//!
//! Not crossterm's event reader: on a terminal that was closed (its pty hung up, a read
//! returns 0 for ever) crossterm 0.28/0.29 retries the read in a loop that never returns, and
//! the kernel sends SIGHUP only to the session leader (the shell), so `top` would spin on
//! after its terminal is gone, sampling the process. Here a hang-up (`POLLHUP`, `POLLERR`, a
//! read of 0 bytes or failing) is [`Input::Gone`].
//!
//! Invariants: [`Keys::next`] waits at most its timeout; bytes are parsed as they come (one
//! key per call, the rest kept); an escape sequence this module does not know is consumed
//! whole and ignored; a lone ESC is the Esc key.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::time::Duration;

/// What came from the terminal.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A key.
    Key(KeyEvent),
    /// Nothing before the timeout.
    Nothing,
    /// The terminal was closed.
    Gone,
}

/// The key reader of standard input.
#[derive(Default)]
pub struct Keys {
    pending: Vec<u8>,
}

impl Keys {
    /// The next key, waiting at most `timeout` for one.
    pub fn next(&mut self, timeout: Duration) -> Input {
        if let Some(key) = self.parse() {
            return Input::Key(key);
        }
        let mut fd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: polls one valid pollfd on our stack.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n < 0 {
            // EINTR: a signal; the caller checks for it and calls again.
            return Input::Nothing;
        }
        if n == 0 {
            return Input::Nothing;
        }
        if fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return Input::Gone;
        }
        let mut buf = [0u8; 1024];
        // SAFETY: reads into a buffer on our stack, at most its length.
        let read = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        match read {
            0 => return Input::Gone,
            r if r < 0 => {
                let e = std::io::Error::last_os_error();
                return match e.kind() {
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock => {
                        Input::Nothing
                    }
                    _ => Input::Gone,
                };
            }
            r => self.pending.extend_from_slice(&buf[..r as usize]),
        }
        match self.parse() {
            Some(key) => Input::Key(key),
            None => Input::Nothing,
        }
    }

    /// The first key of the pending bytes, consumed; `None` when they hold no whole key.
    fn parse(&mut self) -> Option<KeyEvent> {
        loop {
            let (used, key) = parse_one(&self.pending)?;
            self.pending.drain(..used);
            if let Some(key) = key {
                return Some(key);
            }
        }
    }
}

fn key(code: KeyCode) -> Option<KeyEvent> {
    Some(KeyEvent::new(code, KeyModifiers::NONE))
}

/// The first key of `bytes`: how many bytes it takes and the key (`None`: bytes to skip).
/// `None` when `bytes` is empty or ends inside a key.
fn parse_one(bytes: &[u8]) -> Option<(usize, Option<KeyEvent>)> {
    let first = *bytes.first()?;
    Some(match first {
        0x1b => match bytes.get(1) {
            None => (1, key(KeyCode::Esc)),
            Some(b'[') => {
                // CSI: parameters, then a final byte in 0x40..=0x7e.
                let end = bytes[2..].iter().position(|b| (0x40..=0x7e).contains(b))? + 2;
                let code = match (&bytes[2..end], bytes[end]) {
                    (_, b'A') => Some(KeyCode::Up),
                    (_, b'B') => Some(KeyCode::Down),
                    (_, b'C') => Some(KeyCode::Right),
                    (_, b'D') => Some(KeyCode::Left),
                    (_, b'H') | (b"1" | b"7", b'~') => Some(KeyCode::Home),
                    (_, b'F') | (b"4" | b"8", b'~') => Some(KeyCode::End),
                    (b"5", b'~') => Some(KeyCode::PageUp),
                    (b"6", b'~') => Some(KeyCode::PageDown),
                    _ => None,
                };
                (end + 1, code.and_then(key))
            }
            Some(b'O') => {
                let code = match bytes.get(2)? {
                    b'A' => Some(KeyCode::Up),
                    b'B' => Some(KeyCode::Down),
                    b'C' => Some(KeyCode::Right),
                    b'D' => Some(KeyCode::Left),
                    b'H' => Some(KeyCode::Home),
                    b'F' => Some(KeyCode::End),
                    _ => None,
                };
                (3, code.and_then(key))
            }
            // Alt+key, or Esc typed just before a key: Esc, then the key.
            Some(_) => (1, key(KeyCode::Esc)),
        },
        b'\r' | b'\n' => (1, key(KeyCode::Enter)),
        0x7f | 0x08 => (1, key(KeyCode::Backspace)),
        0x03 => (
            1,
            Some(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        ),
        b if b < 0x20 => (1, None),
        b => {
            let len = match b {
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => 1,
            };
            if bytes.len() < len {
                return None;
            }
            match std::str::from_utf8(&bytes[..len])
                .ok()
                .and_then(|s| s.chars().next())
            {
                Some(c) => (len, key(KeyCode::Char(c))),
                None => (1, None),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> Vec<KeyEvent> {
        let mut k = Keys {
            pending: bytes.to_vec(),
        };
        std::iter::from_fn(|| k.parse()).collect()
    }

    fn codes(bytes: &[u8]) -> Vec<KeyCode> {
        keys(bytes).into_iter().map(|k| k.code).collect()
    }

    #[test]
    fn arrows_pages_home_end_in_both_encodings() {
        use KeyCode::*;
        assert_eq!(
            codes(b"\x1b[A\x1b[B\x1bOC\x1bOD\x1b[5~\x1b[6~\x1b[H\x1b[4~\x1b[1~\x1bOF"),
            [Up, Down, Right, Left, PageUp, PageDown, Home, End, Home, End]
        );
    }

    #[test]
    fn text_enter_backspace_escape_ctrl_c() {
        use KeyCode::*;
        assert_eq!(
            codes("/é\r\x7f\x1b".as_bytes()),
            [Char('/'), Char('é'), Enter, Backspace, Esc]
        );
        let ctrl_c = keys(b"\x03");
        assert_eq!(ctrl_c[0].code, Char('c'));
        assert!(ctrl_c[0].modifiers.contains(KeyModifiers::CONTROL));
    }

    #[test]
    fn unknown_sequences_are_skipped_and_partial_ones_wait() {
        assert_eq!(codes(b"\x1b[1;5Pq"), [KeyCode::Char('q')]);
        let mut k = Keys {
            pending: b"\x1b[5".to_vec(),
        };
        assert_eq!(k.parse(), None);
        k.pending.push(b'~');
        assert_eq!(k.parse().map(|k| k.code), Some(KeyCode::PageUp));
    }
}
