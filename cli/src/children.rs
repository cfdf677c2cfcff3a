//! Child processes of `vane demo` (the server and the monitor) and a blocking HTTP GET (ureq,
//! the registry client's HTTP library) for their status endpoints.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A child that is stopped (SIGTERM, then SIGKILL after 10 s) when dropped, and that dies
/// with its parent (`PR_SET_PDEATHSIG`), so neither a failure nor a kill of `vane demo`
/// leaves it running. Ctrl-C reaches it directly: it shares the terminal's process group.
pub struct Guarded {
    pub name: &'static str,
    child: Child,
    /// Where its stdout and stderr go (quoted when it dies).
    pub log: PathBuf,
}

impl Guarded {
    /// Starts `exe args…` with stdout and stderr appended to `log`.
    pub fn spawn(name: &'static str, exe: &Path, args: &[String], log: &Path) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(exe);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({})", exe.display()))?;
        Ok(Self {
            name,
            child,
            log: log.to_path_buf(),
        })
    }

    /// Errors if the child has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    /// Waits until the child exits on its own (`--keep-serving`).
    pub fn wait(&mut self) -> Result<()> {
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let give_up = Instant::now() + Duration::from_secs(10);
        while Instant::now() < give_up {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET http://{addr}{path}`: the status (any) and the body.
pub fn get(addr: &str, path: &str) -> Result<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("http://{addr}{path}");
    let mut reply = agent
        .get(&url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let body = reply
        .body_mut()
        .read_to_string()
        .with_context(|| format!("GET {url}: reading the body"))?;
    Ok((reply.status().as_u16(), body))
}

/// Polls `GET path` until it answers 200, the child dies, or `timeout` passes.
pub fn wait_ready(child: &mut Guarded, addr: &str, path: &str, timeout: Duration) -> Result<()> {
    let give_up = Instant::now() + timeout;
    loop {
        child.check_alive()?;
        if let Ok((200, _)) = get(addr, path) {
            return Ok(());
        }
        if Instant::now() > give_up {
            bail!(
                "{} did not answer GET {path} on {addr} within {timeout:?} (log: {})",
                child.name,
                child.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
