//! `cargo xtask demo` (what `make demo` runs): picoq's main job end to end
//! on loopback, with nothing to set up.
//!
//! The firewall: smtpd-front under tcpserver on 127.0.0.1:2525, whose
//! qmail-queue is qmqpc. The gateway: qmqpd under tcpserver, delivering into
//! `demo/Maildir`. swaks sends mail to the firewall; the demo shows what
//! arrives (envelope and both Received lines), what the firewall refuses,
//! and what a client sees while the gateway is down. Everything it starts
//! is stopped when it returns, so it can run again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::{HOST_TRIPLE, root, show, target_dir};

/// The firewall's SMTP port (fixed, so the by-hand commands can name it).
const SMTP_PORT: u16 = 2525;

/// A tcpserver we started; stopped when dropped. Its programs' fd 2 goes
/// to `log`.
struct Server {
    name: &'static str,
    child: Child,
}

/// The log files of the two servers and how much of each was shown.
struct Logs {
    files: Vec<(PathBuf, usize)>,
}

impl Logs {
    /// Prints what the servers logged since the last call.
    fn show(&mut self) {
        for (path, seen) in &mut self.files {
            let text = std::fs::read_to_string(&*path).unwrap_or_default();
            for line in text.get(*seen..).unwrap_or("").lines() {
                println!("     log: {line}");
            }
            *seen = text.len();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        println!("   stopped {}", self.name);
    }
}

pub fn main(args: &[String]) -> ExitCode {
    if !args.is_empty() {
        return crate::usage("demo takes no arguments");
    }
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<(), String> {
    let root = root();
    for tool in ["tcpserver", "swaks"] {
        if Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map_or(true, |o| !o.status.success())
        {
            return Err(format!("{tool} is missing: run `sh tests/deps.sh --demo` (make demo does)"));
        }
    }
    println!("== building the programs (static, musl)");
    let built = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked", "--target", HOST_TRIPLE])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if !built.success() {
        return Err("the build failed".into());
    }
    let bin = target_dir(&root).join(HOST_TRIPLE).join("release");

    let demo = root.join("demo");
    let _ = std::fs::remove_dir_all(&demo);
    let firewall = demo.join("firewall");
    let maildir = demo.join("Maildir");
    for d in [firewall.join("control"), maildir.join("tmp"), maildir.join("new"), maildir.join("cur")] {
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let gw_port = free_port()?;
    let control = [
        ("me", "firewall.picoq.test\n".to_string()),
        ("rcpthosts", "example.net\n.example.net\n".to_string()),
        ("qmqpservers", format!("127.0.0.1:{gw_port}\n")),
        ("databytes", "1000000\n".to_string()),
    ];
    for (name, body) in &control {
        std::fs::write(firewall.join("control").join(name), body).map_err(|e| format!("control/{name}: {e}"))?;
    }
    println!("\n== the firewall's control files ({})", show(&root, &firewall.join("control")));
    for (name, body) in &control {
        println!("   {name}: {}", body.trim_end().replace('\n', ", "));
    }

    println!("\n== starting (the programs log to demo/*.log)");
    let gw_log = demo.join("gateway.log");
    let fw_log = demo.join("firewall.log");
    let mut logs = Logs { files: vec![(fw_log.clone(), 0), (gw_log.clone(), 0)] };
    let gateway = start(
        "the gateway: tcpserver 127.0.0.1:PORT qmqpd demo/Maildir",
        Command::new("tcpserver")
            .args(["-H", "-R", "-l", "gateway.picoq.test", "127.0.0.1", &gw_port.to_string()])
            .arg(bin.join("qmqpd"))
            .arg(&maildir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin"),
        gw_port,
        &gw_log,
    )?;
    let _firewall = start(
        "the firewall: tcpserver 127.0.0.1:2525 smtpd-front, QMAILQUEUE=qmqpc",
        Command::new("tcpserver")
            .args(["-H", "-R", "-l", "firewall.picoq.test", "127.0.0.1", &SMTP_PORT.to_string()])
            .arg(bin.join("smtpd-front"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("PICOQ_HOME", &firewall)
            .env("QMAILQUEUE", bin.join("qmqpc")),
        SMTP_PORT,
        &fw_log,
    )?;

    println!("\n== 1. two messages through the firewall to the gateway");
    swaks(
        &mut logs,
        &["--from", "alice@example.org", "--to", "bob@example.net", "--header", "Subject: hello through picoq"],
    )?;
    swaks(
        &mut logs,
        &[
            "--from",
            "carol@example.org",
            "--to",
            "dave@example.net,erin@mail.example.net",
            "--header",
            "Subject: two recipients",
        ],
    )?;
    show_deliveries(&root, &maildir)?;

    println!("\n== 2. the firewall refuses to relay to a domain outside rcpthosts");
    swaks(&mut logs, &["--from", "mallory@example.org", "--to", "victim@example.com", "--quit-after", "RCPT"])?;

    println!("\n== 3. the gateway goes down: the client is told to try later (4xx), nothing is lost");
    drop(gateway);
    swaks(
        &mut logs,
        &["--from", "alice@example.org", "--to", "bob@example.net", "--header", "Subject: while the gateway is down"],
    )?;

    println!(
        "\n== by hand (in {dir})\n\
         tcpserver -H -R -l gateway 127.0.0.1 {gw_port} {qmqpd} Maildir &\n\
         env PICOQ_HOME=firewall QMAILQUEUE={qmqpc} tcpserver -H -R -l firewall 127.0.0.1 {SMTP_PORT} {smtpd} &\n\
         swaks --server 127.0.0.1:{SMTP_PORT} --from you@example.org --to someone@example.net\n\
         ls Maildir/new\n\n\
         man -l man/smtpd-front.8, man/qmqpc.8 and man/qmqpd.8 say what each program does.",
        dir = show(&root, &demo),
        qmqpd = bin.join("qmqpd").display(),
        qmqpc = bin.join("qmqpc").display(),
        smtpd = bin.join("smtpd-front").display(),
    );
    println!("\n== stopping what the demo started");
    Ok(())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| e.to_string())
}

/// Starts a tcpserver and waits until it accepts connections.
fn start(name: &'static str, cmd: &mut Command, port: u16, log: &Path) -> Result<Server, String> {
    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        return Err(format!("port {port} is already in use: stop what listens there and run the demo again"));
    }
    let log = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let child =
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().map_err(|e| format!("tcpserver: {e}"))?;
    let server = Server { name, child };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{name} did not start"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("   {name} (port {port})");
    Ok(server)
}

/// Runs swaks against the firewall and prints its conversation, trimmed.
fn swaks(logs: &mut Logs, args: &[&str]) -> Result<(), String> {
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{SMTP_PORT}"), "--helo", "client.picoq.test"])
        .args(args)
        .output()
        .map_err(|e| format!("swaks: {e}"))?;
    println!("   $ swaks --server 127.0.0.1:{SMTP_PORT} {}", args.join(" "));
    // The server's replies (`<-`, `<**` for errors) and the envelope
    // commands (`->`); not the message itself.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let l = line.trim_start();
        let command =
            l.strip_prefix("-> ").is_some_and(|c| ["MAIL", "RCPT", "DATA", "QUIT"].iter().any(|v| c.starts_with(v)));
        if l.starts_with("<-") || l.starts_with("<**") || command {
            println!("     {l}");
        }
    }
    // Give the servers a moment to finish their log lines.
    std::thread::sleep(Duration::from_millis(100));
    logs.show();
    Ok(())
}

/// Prints the envelope and trace headers of each delivered message.
fn show_deliveries(root: &Path, maildir: &Path) -> Result<(), String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(maildir.join("new"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    println!("\n   what arrived in {}:", show(root, &maildir.join("new")));
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| e.to_string())?;
        println!("   --- {}", f.file_name().unwrap_or_default().to_string_lossy());
        let mut in_received = false;
        for line in text.lines() {
            if line.is_empty() {
                break;
            }
            let continued = line.starts_with(' ') || line.starts_with('\t');
            let keep = line.starts_with("Return-Path:")
                || line.starts_with("Delivered-To:")
                || line.starts_with("Subject:")
                || line.starts_with("Received:")
                || (continued && in_received);
            in_received = line.starts_with("Received:") || (continued && in_received);
            if keep {
                println!("   {line}");
            }
        }
    }
    if files.len() != 2 {
        return Err(format!("expected 2 messages in the Maildir, found {}", files.len()));
    }
    Ok(())
}
