//! Ctrl-C and SIGTERM, handled in one place for every command that writes: the first
//! signal sets a flag that long operations check between writes and wake on while they
//! wait, so a run stops at a point a re-run can resume from.

use tokio::sync::watch;

/// Set once Ctrl-C or SIGTERM arrives. Long operations check it between writes and
/// wake on it while waiting.
#[derive(Clone)]
pub struct Interrupt {
    rx: watch::Receiver<bool>,
    /// Keeps [`Interrupt::never`]'s channel open.
    _never: Option<std::sync::Arc<watch::Sender<bool>>>,
}

impl Interrupt {
    pub fn install() -> Interrupt {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(t) => t,
                        Err(_) => {
                            let _ = tokio::signal::ctrl_c().await;
                            let _ = tx.send(true);
                            return;
                        }
                    };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
            let _ = tx.send(true);
        });
        Interrupt { rx, _never: None }
    }

    /// One that never fires: for a wait that must finish (between a delete and the
    /// create that undoes it). Signals still reach the run's own [`Interrupt`].
    pub fn never() -> Interrupt {
        let (tx, rx) = watch::channel(false);
        Interrupt {
            rx,
            _never: Some(std::sync::Arc::new(tx)),
        }
    }

    /// Like [`Interrupt::install`], and also says `note` on the first signal; a second
    /// Ctrl-C or SIGTERM exits at once (130), for loops where each item is safe to cut.
    pub fn install_with_abort(note: &'static str) -> Interrupt {
        let first = Interrupt::install();
        let mut waiter = first.clone();
        tokio::spawn(async move {
            waiter.wait().await;
            crate::render::note(format!("interrupted: {note}"));
            let again = Interrupt::install();
            let mut again_waiter = again.clone();
            again_waiter.wait().await;
            std::process::exit(crate::error::exit::INTERRUPTED);
        });
        first
    }

    pub fn is_set(&self) -> bool {
        *self.rx.borrow()
    }

    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|v| *v).await;
    }
}
