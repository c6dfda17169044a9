//! `cargo xtask demo` (what `make demo` runs): picoq's main job on loopback,
//! with nothing to set up. A message goes through the qmail-queue interface
//! into qmqpc, which hands it over QMQP to a gateway; the gateway here is a
//! small QMQP server in this process that prints what arrives and keeps it
//! under `demo/gateway/`. The first server in qmqpservers is a closed port,
//! so the demo also shows failover; a second run shows a gateway that
//! refuses, and its words reaching the caller on fd 6.
//!
//! Everything it starts stops when it returns; running it again works.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};

use crate::{HOST_TRIPLE, root, show, target_dir};

/// What the demo gateway answers.
#[derive(Clone)]
struct Gateway {
    port: u16,
    answer: Arc<Mutex<String>>,
}

pub fn main(args: &[String]) -> ExitCode {
    if !args.is_empty() {
        return crate::usage("demo takes no arguments");
    }
    let root = root();
    println!("== building qmqpc (static, musl)");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked", "--target", HOST_TRIPLE])
        .current_dir(&root)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("demo: the build failed");
        return ExitCode::FAILURE;
    }
    let qmqpc = target_dir(&root).join(HOST_TRIPLE).join("release").join("qmqpc");
    let demo = root.join("demo");
    let _ = std::fs::remove_dir_all(&demo);
    let home = demo.join("home");
    let gateway_dir = demo.join("gateway");
    for d in [home.join("control"), gateway_dir.clone()] {
        if let Err(e) = std::fs::create_dir_all(&d) {
            eprintln!("demo: unable to create {}: {e}", d.display());
            return ExitCode::FAILURE;
        }
    }

    let gateway = match start_gateway(&gateway_dir) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("demo: unable to start the gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A port nobody listens on: the first server "is down".
    let dead = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(9);
    let servers = format!("# the internal gateways, tried in order\n127.0.0.1:{dead}\n127.0.0.1:{}\n", gateway.port);
    let _ = std::fs::write(home.join("control/qmqpservers"), &servers);
    let _ = std::fs::write(home.join("control/me"), "firewall.demo.picoq\n");
    println!("\n== {}/control/qmqpservers\n{servers}", show(&root, &home));

    let message = "From: alice@example.org\nTo: bob@example.net, carol@example.net\n\
                   Subject: hello through picoq\nDate: 21 Nov 2026 05:43:00 -0000\n\
                   Message-Id: <demo.1@example.org>\n\nThis message went through qmqpc over QMQP.\n";
    let envelope = b"Falice@example.org\0Tbob@example.net\0Tcarol@example.net\0\0";

    println!("== 1. a message for two recipients, the first gateway down");
    let ok = run_qmqpc(&root, &qmqpc, &home, message, envelope, false);
    println!("\n== 2. the gateway refuses (Z), the caller opened fd 6");
    *gateway.answer.lock().unwrap() = "Zmailbox of bob is over quota, try later (#4.2.2)".to_string();
    let refused = run_qmqpc(&root, &qmqpc, &home, message, envelope, true);

    println!(
        "\n== by hand\n\
         echo 127.0.0.1:628 > HOME/control/qmqpservers\n\
         printf 'Subject: hi\\n\\nhello\\n' | PICOQ_HOME=HOME {qmqpc} 1< <(printf 'Fme@example.org\\0Tyou@example.net\\0\\0')\n\
         echo $?    # 0: the gateway took it; see man/qmqpc.8 for the other exit codes\n\n\
         The gateway kept what it received in {gw}/.",
        qmqpc = show(&root, &qmqpc),
        gw = show(&root, &gateway_dir),
    );
    if ok == Some(0) && refused == Some(82) {
        println!("\ndemo: done (exit codes 0 and 82, as expected)");
        ExitCode::SUCCESS
    } else {
        eprintln!("\ndemo: unexpected exit codes {ok:?} and {refused:?}");
        ExitCode::FAILURE
    }
}

/// Runs qmqpc with `message` on fd 0 (a pipe) and `envelope` on fd 1,
/// printing what it does; returns its exit code.
fn run_qmqpc(root: &Path, qmqpc: &Path, home: &Path, message: &str, envelope: &[u8], fd6: bool) -> Option<i32> {
    let env_file = home.join("envelope");
    let fd6_file = home.join("fd6");
    let _ = std::fs::write(&env_file, envelope);
    let _ = std::fs::remove_file(&fd6_file);
    let redirect6 = if fd6 { " 6>fd6" } else { "" };
    println!("$ cd {} && printf '...' | PICOQ_HOME=. {} 1<envelope{redirect6}", show(root, home), show(root, qmqpc));
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!("exec \"$0\" 1<envelope{redirect6}"))
        .arg(qmqpc)
        .current_dir(home)
        .env_clear()
        .env("PICOQ_HOME", ".")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("demo: unable to run qmqpc: {e}");
            return None;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(message.as_bytes());
    }
    let out = child.wait_with_output().ok()?;
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        println!("  (qmqpc on fd 2) {line}");
    }
    let code = out.status.code();
    println!("  exit code: {}", code.map_or("killed".to_string(), |c| c.to_string()));
    if fd6 {
        println!("  on fd 6: {}", std::fs::read_to_string(&fd6_file).unwrap_or_default());
    }
    code
}

fn start_gateway(dir: &Path) -> std::io::Result<Gateway> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let gateway = Gateway { port: listener.local_addr()?.port(), answer: Arc::new(Mutex::new("Kok".to_string())) };
    let g = gateway.clone();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().flatten().enumerate() {
            let answer = g.answer.lock().unwrap().clone();
            let _ = serve(stream, &answer, &dir.join(format!("message.{}", n + 1)));
        }
    });
    Ok(gateway)
}

/// Reads one QMQP packet, prints and keeps it, answers `answer`.
fn serve(mut s: TcpStream, answer: &str, keep: &Path) -> std::io::Result<()> {
    let mut packet = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        packet.extend_from_slice(&buf[..n]);
        if let Some((body, _)) = netstring(&packet) {
            let Some((message, mut rest)) = netstring(body) else { return Ok(()) };
            let mut addrs = Vec::new();
            while let Some((a, r)) = netstring(rest) {
                addrs.push(String::from_utf8_lossy(a).into_owned());
                rest = r;
            }
            let sender = addrs.first().cloned().unwrap_or_default();
            let rcpts = addrs.get(1..).unwrap_or(&[]).join(", ");
            println!(
                "  [gateway] QMQP packet of {} bytes: from <{sender}> to {rcpts}; message {} bytes; answer {answer:?}",
                packet.len(),
                message.len()
            );
            let mut kept = format!("envelope: from <{sender}> to {rcpts}\n\n").into_bytes();
            kept.extend_from_slice(message);
            std::fs::write(keep, kept)?;
            return s.write_all(format!("{}:{answer},", answer.len()).as_bytes());
        }
    }
}

/// One complete netstring at the start of `data`: (body, rest).
fn netstring(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = data.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&data[..colon]).ok()?.parse().ok()?;
    let body = data.get(colon + 1..colon + 1 + len)?;
    (data.get(colon + 1 + len) == Some(&b',')).then(|| (body, &data[colon + 2 + len..]))
}
