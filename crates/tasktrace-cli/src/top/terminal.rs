//! The terminal of the live view: raw mode and the alternate screen while a [`Screen`] lives,
//! the terminal as it was once it is dropped — on every path out, unwinding included.
//!
//! Invariants: [`Screen::new`] either returns a screen with the terminal set up or leaves the
//! terminal as it found it; restoring is done once (drop, or the panic hook that runs before a
//! panic's message is printed, so the message lands on the normal screen), and errors while
//! restoring are ignored (a terminal that was closed cannot be restored).

use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::prelude::CrosstermBackend;
use std::sync::atomic::{AtomicBool, Ordering};

/// The terminal type of the live view.
pub type Term = ratatui::Terminal<CrosstermBackend<std::io::Stdout>>;

/// Set while the terminal is in raw mode on the alternate screen.
static SET_UP: AtomicBool = AtomicBool::new(false);

/// The live view's terminal.
pub struct Screen {
    /// Where the view draws.
    pub term: Term,
}

impl Screen {
    /// Raw mode, the alternate screen, the cursor hidden.
    pub fn new() -> Result<Screen, String> {
        let fail = |e: std::io::Error| format!("cannot set up the terminal: {e}");
        terminal::enable_raw_mode().map_err(fail)?;
        SET_UP.store(true, Ordering::SeqCst);
        install_panic_hook();
        let setup = execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )
        .and_then(|()| ratatui::Terminal::new(CrosstermBackend::new(std::io::stdout())));
        match setup {
            Ok(term) => Ok(Screen { term }),
            Err(e) => {
                restore();
                Err(fail(e))
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back (once; later calls do nothing).
fn restore() {
    if SET_UP.swap(false, Ordering::SeqCst) {
        let _ = execute!(
            std::io::stdout(),
            terminal::LeaveAlternateScreen,
            cursor::Show
        );
        let _ = terminal::disable_raw_mode();
    }
}

/// Restores the terminal before the panic message (main's one-line hook) is printed.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
