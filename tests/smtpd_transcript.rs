//! smtpd-front over pipes: every row of SPEC §5's reply table, every
//! control file and environment variable, the DATA transform and the
//! Received line, checked against qmail-smtpd's own words (qmail-smtpd.c,
//! received.c, qmail.c) and what picoq adds.

#[path = "support/smtpd.rs"]
mod smtpd;
mod support;

use smtpd::{Rig, crlf, write_cdb};

const MSG: &str = "Subject: t\r\n\r\nhello\r\n";

/// HELO, MAIL, RCPT, DATA with `body`, QUIT.
fn one_message(from: &str, to: &str, body: &str) -> Vec<u8> {
    let mut v = crlf(&["HELO client.test", &format!("MAIL FROM:<{from}>"), &format!("RCPT TO:<{to}>"), "DATA"]);
    v.extend_from_slice(body.as_bytes());
    v.extend_from_slice(b".\r\nQUIT\r\n");
    v
}

fn assert_accepted(line: &str) {
    let rest = line.strip_prefix("250 ok ").unwrap_or_else(|| panic!("not accepted: {line:?}"));
    let (t, qp) = rest.split_once(" qp ").unwrap();
    assert!(t.parse::<u64>().unwrap() > 1_600_000_000, "{line}");
    assert!(qp.parse::<u32>().unwrap() > 0, "{line}");
}

// --- greeting, HELO/EHLO, QUIT --------------------------------------------

#[test]
fn greeting_helo_ehlo_quit_use_smtpgreeting() {
    let r = Rig::new("greet");
    r.control("smtpgreeting", "mx.test picoq welcomes you\n");
    let s = r.run(&crlf(&["HELO a", "EHLO b", "QUIT"]));
    assert_eq!(
        s.lines(),
        [
            "220 mx.test picoq welcomes you ESMTP",
            "250 mx.test picoq welcomes you",
            "250-mx.test picoq welcomes you",
            "250-PIPELINING",
            "250 8BITMIME",
            "221 mx.test picoq welcomes you",
        ]
    );
    assert_eq!(s.code, Some(0));
}

#[test]
fn greeting_defaults_to_me() {
    let r = Rig::new("greetme");
    let s = r.run(&crlf(&["QUIT"]));
    assert_eq!(s.lines(), ["220 mx.test ESMTP", "221 mx.test"]);
}

#[test]
fn no_smtpgreeting_and_no_me_is_421() {
    let r = Rig::new("nome");
    r.remove_control("me");
    let s = r.run(&crlf(&["QUIT"]));
    assert_eq!(s.lines(), ["421 unable to read controls (#4.3.0)"]);
    assert_eq!(s.code, Some(1));
}

#[test]
fn unreadable_control_file_is_421() {
    for name in ["rcpthosts", "badmailfrom", "databytes", "timeoutsmtpd", "smtpgreeting", "localiphost", "maxrcpt"] {
        let r = Rig::new("unreadable");
        r.remove_control(name);
        // A directory: open works, read gives EISDIR.
        std::fs::create_dir(r.home.path().join("control").join(name)).unwrap();
        let s = r.run(&crlf(&["QUIT"]));
        assert_eq!(s.lines(), ["421 unable to read controls (#4.3.0)"], "{name}");
    }
}

#[test]
fn ehlo_advertises_size_when_databytes_is_set() {
    let r = Rig::new("size");
    r.control("databytes", "10000\n");
    let s = r.run(&crlf(&["EHLO b", "QUIT"]));
    assert_eq!(
        s.lines(),
        ["220 mx.test ESMTP", "250-mx.test", "250-PIPELINING", "250-SIZE 10000", "250 8BITMIME", "221 mx.test"]
    );
}

// --- the simple verbs -------------------------------------------------------

#[test]
fn rset_noop_vrfy_help_and_unknown() {
    let r = Rig::new("verbs");
    let s = r.run(&crlf(&["RSET", "NOOP", "VRFY postmaster", "HELP", "ETRN x", "STARTTLS", "noop x", "QUIT"]));
    let l = s.lines();
    assert_eq!(l[1], "250 flushed");
    assert_eq!(l[2], "250 ok");
    assert_eq!(l[3], "252 send some mail, i'll try my best");
    assert!(l[4].starts_with("214 ") && l[4].contains("picoq"), "{}", l[4]);
    assert_eq!(l[5], "502 unimplemented (#5.5.1)");
    assert_eq!(l[6], "502 unimplemented (#5.5.1)");
    assert_eq!(l[7], "250 ok");
}

#[test]
fn commands_may_end_in_bare_lf_and_any_case() {
    // commands.c accepts LF alone; `nc` users rely on it.
    let r = Rig::new("lfcmd");
    let s = r.run(b"helo x\nmAiL FROM:<a@b.test>\nrcpt to:<u@example.org>\nquit\n");
    assert_eq!(s.lines(), ["220 mx.test ESMTP", "250 mx.test", "250 ok", "250 ok", "221 mx.test"]);
}

#[test]
fn eof_without_quit_exits_1() {
    let r = Rig::new("eof");
    let s = r.run(b"NOOP\r\n");
    assert_eq!(s.lines(), ["220 mx.test ESMTP", "250 ok"]);
    assert_eq!(s.code, Some(1));
}

#[test]
fn overlong_command_line_is_500_and_the_session_goes_on() {
    let r = Rig::new("longline");
    let mut input = vec![b'N'; 5000];
    input.extend_from_slice(b"\r\nNOOP\r\nQUIT\r\n");
    let s = r.run(&input);
    assert_eq!(s.lines(), ["220 mx.test ESMTP", "500 line too long (#5.5.2)", "250 ok", "221 mx.test"]);
}

// --- MAIL, RCPT, DATA sequencing -------------------------------------------

#[test]
fn rcpt_or_data_before_mail_and_data_before_rcpt_are_503() {
    let r = Rig::new("seq");
    let s = r.run(&crlf(&["RCPT TO:<u@example.org>", "DATA", "MAIL FROM:<a@b.test>", "DATA", "QUIT"]));
    assert_eq!(
        s.lines(),
        [
            "220 mx.test ESMTP",
            "503 MAIL first (#5.5.1)",
            "503 MAIL first (#5.5.1)",
            "250 ok",
            "503 RCPT first (#5.5.1)",
            "221 mx.test"
        ]
    );
}

#[test]
fn helo_is_not_required_and_rset_or_helo_forget_the_sender() {
    let r = Rig::new("noHelo");
    let s = r.run(&crlf(&[
        "MAIL FROM:<a@b.test>",
        "RSET",
        "RCPT TO:<u@example.org>",
        "MAIL FROM:<a@b.test>",
        "HELO x",
        "RCPT TO:<u@example.org>",
        "QUIT",
    ]));
    let l = s.lines();
    assert_eq!(l[1], "250 ok");
    assert_eq!(l[3], "503 MAIL first (#5.5.1)");
    assert_eq!(l[6], "503 MAIL first (#5.5.1)");
}

#[test]
fn accepted_message_reaches_the_queue_exactly() {
    let r = Rig::new("accept");
    let s = r.run(&one_message("a@b.test", "u@example.org", MSG));
    let l = s.lines();
    assert_eq!(&l[..5], ["220 mx.test ESMTP", "250 mx.test", "250 ok", "250 ok", "354 go ahead"]);
    assert_accepted(l[5]);
    assert_eq!(l[6], "221 mx.test");
    let q = r.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].envelope, b"Fa@b.test\0Tu@example.org\0\0");
    assert_eq!(q[0].body(), b"Subject: t\n\nhello\n");
    // qp is the queue program's pid: the script named its files by $$.
    let qp = l[5].rsplit(' ').next().unwrap();
    assert!(r.queue_dir.path().join(format!("env.{qp}")).exists(), "qp {qp} is the queue's pid");
    // One log line for the transaction.
    assert!(s.err.contains("192.0.2.7 helo=client.test from=<a@b.test> rcpts=1 bytes=18 qp="), "{}", s.err);
}

#[test]
fn mail_resets_recipients_and_several_messages_per_session() {
    let r = Rig::new("multi");
    let mut input = crlf(&["MAIL FROM:<a@b.test>", "RCPT TO:<x@example.org>", "MAIL FROM:<c@d.test>"]);
    input.extend(crlf(&["RCPT TO:<u@example.org>", "RCPT TO:<v@example.org>", "DATA", "one", "."]));
    input.extend(crlf(&["MAIL FROM:<>", "RCPT TO:<w@example.org>", "DATA", "two", ".", "QUIT"]));
    let s = r.run(&input);
    let l = s.lines();
    assert_accepted(l[7]);
    assert_accepted(l[11]);
    let q = r.queued();
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].parsed_envelope(), ("c@d.test".into(), vec!["u@example.org".into(), "v@example.org".into()]));
    assert_eq!(q[0].body(), b"one\n");
    assert_eq!(q[1].parsed_envelope(), ("".into(), vec!["w@example.org".into()]));
    assert_eq!(q[1].body(), b"two\n");
}

#[test]
fn pipelined_commands_get_replies_in_order() {
    // RFC 2920: the whole transaction in one write.
    let r = Rig::new("pipe");
    let mut input =
        crlf(&["EHLO x", "MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>", "RCPT TO:<u@nowhere.test>", "DATA"]);
    input.extend_from_slice(b"hi\r\n.\r\nNOOP\r\nQUIT\r\n");
    let s = r.run(&input);
    let l = s.lines();
    assert_eq!(
        l[4..9],
        [
            "250 ok",
            "250 ok",
            "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
            "354 go ahead",
            l[8]
        ]
    );
    assert_accepted(l[8]);
    assert_eq!(l[9..], ["250 ok", "221 mx.test"]);
}

// --- addresses --------------------------------------------------------------

#[test]
fn address_forms_like_addrparse() {
    let r = Rig::new("addr");
    let mut input = crlf(&[
        "MAIL FROM: a@b.test",
        "RCPT TO:<@relay1.test,@relay2.test:u1@example.org>",
        "RCPT TO:<\"u 2\"@example.org>",
        "RCPT TO:u3@example.org",
        "RCPT TO:<u4@EXAMPLE.ORG> NOTIFY=NEVER",
        "DATA",
    ]);
    input.extend(crlf(&["x", ".", "QUIT"]));
    let s = r.run(&input);
    assert!(s.lines()[1..5].iter().all(|l| *l == "250 ok"), "{:?}", s.lines());
    let (from, to) = r.queued()[0].parsed_envelope();
    assert_eq!(from, "a@b.test");
    assert_eq!(to, ["u1@example.org", "u 2@example.org", "u3@example.org", "u4@EXAMPLE.ORG"]);
}

#[test]
fn address_of_900_bytes_is_555_and_899_is_fine() {
    let r = Rig::new("long");
    let ok = format!("{}@example.org", "a".repeat(899 - 12));
    let long = format!("{}@example.org", "a".repeat(900 - 12));
    let s = r.run(&crlf(&[
        &format!("MAIL FROM:<{long}>"),
        &format!("MAIL FROM:<{ok}>"),
        &format!("RCPT TO:<{long}>"),
        "QUIT",
    ]));
    assert_eq!(s.lines()[1..4], ["555 syntax error (#5.5.4)", "250 ok", "555 syntax error (#5.5.4)"]);
}

#[test]
fn nul_in_a_command_ends_it_like_qmails_c_strings() {
    let r = Rig::new("nul");
    let mut input =
        b"MAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.org\0@evil.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n".to_vec();
    input.extend_from_slice(b"");
    let s = r.run(&input);
    assert_eq!(s.lines()[2], "250 ok");
    assert_eq!(r.queued()[0].parsed_envelope().1, ["u@example.org"]);
}

// --- control files ------------------------------------------------------------

#[test]
fn rcpthosts_exact_suffix_and_case() {
    let r = Rig::new("rh");
    r.control("rcpthosts", "# domains\nexample.org\n.example.net\nMiXeD.test\n");
    let tries = [
        ("u@example.org", true),
        ("u@EXAMPLE.org", true),
        ("u@sub.example.org", false),
        ("u@sub.example.net", true),
        ("u@a.b.example.net", true),
        ("u@example.net", false),
        ("u@mixed.TEST", true),
        ("u@other.test", false),
        ("postmaster", true),
    ];
    let mut input = crlf(&["MAIL FROM:<a@b.test>"]);
    for (a, _) in tries {
        input.extend(crlf(&[&format!("RCPT TO:<{a}>")]));
    }
    let s = r.run(&input);
    for (i, (a, ok)) in tries.iter().enumerate() {
        let want = if *ok { "250 ok" } else { "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)" };
        assert_eq!(s.lines()[2 + i], want, "{a}");
    }
    assert!(!s.err.contains("rcpthosts is missing"));
}

#[test]
fn morercpthosts_cdb_is_consulted_after_rcpthosts() {
    let r = Rig::new("mrh");
    write_cdb(&r.home.path().join("control/morercpthosts.cdb"), &["more.test", ".sub.more.test"]);
    let s = r.run(&crlf(&[
        "MAIL FROM:<a@b.test>",
        "RCPT TO:<u@more.test>",
        "RCPT TO:<u@MORE.test>",
        "RCPT TO:<u@x.sub.more.test>",
        "RCPT TO:<u@x.more.test>",
        "RCPT TO:<u@example.org>",
        "QUIT",
    ]));
    let no = "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)";
    assert_eq!(s.lines()[2..7], ["250 ok", "250 ok", "250 ok", no, "250 ok"]);
}

#[test]
fn big_rcpthosts_beyond_memory_still_works() {
    let r = Rig::new("bigrh");
    let mut list: String = (0..2000).map(|i| format!("host{i}.example\n")).collect();
    list.push_str("last.example\n");
    r.control("rcpthosts", &list);
    let s = r.run(&crlf(&[
        "MAIL FROM:<a@b.test>",
        "RCPT TO:<u@last.example>",
        "RCPT TO:<u@host1999.example>",
        "RCPT TO:<u@nope.example>",
        "QUIT",
    ]));
    let l = s.lines();
    assert_eq!(l[2], "250 ok");
    assert_eq!(l[3], "250 ok");
    assert!(l[4].starts_with("553 "));
}

#[test]
fn missing_rcpthosts_accepts_everything_and_warns_loudly() {
    let r = Rig::new("norh");
    r.remove_control("rcpthosts");
    let s = r.run(&crlf(&["MAIL FROM:<a@b.test>", "RCPT TO:<u@anywhere.test>", "QUIT"]));
    assert_eq!(s.lines()[2], "250 ok");
    assert!(s.err.contains("warning: control/rcpthosts is missing"), "{}", s.err);
    // morercpthosts.cdb alone does not restrict anything (qmail).
    write_cdb(&r.home.path().join("control/morercpthosts.cdb"), &["more.test"]);
    let s = r.run(&crlf(&["MAIL FROM:<a@b.test>", "RCPT TO:<u@anywhere.test>", "QUIT"]));
    assert_eq!(s.lines()[2], "250 ok");
}

#[test]
fn badmailfrom_address_and_domain() {
    let r = Rig::new("bmf");
    r.control("badmailfrom", "spammer@bad.test\n@worse.test\n");
    let bmf = "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)";
    for (from, bad) in [
        ("spammer@bad.test", true),
        ("SPAMMER@Bad.Test", true),
        ("x@worse.test", true),
        ("x@bad.test", false),
        ("", false),
    ] {
        let s = r.run(&crlf(&[&format!("MAIL FROM:<{from}>"), "RCPT TO:<u@example.org>", "QUIT"]));
        assert_eq!(s.lines()[1], "250 ok", "{from}: MAIL is accepted");
        assert_eq!(s.lines()[2], if bad { bmf } else { "250 ok" }, "{from}");
    }
}

#[test]
fn databytes_from_control_and_environment() {
    let r = Rig::new("db");
    r.control("databytes", "20\n");
    let big = "0123456789012345678901234567890\r\n";
    let exceeded = "552 sorry, that message size exceeds my databytes limit (#5.3.4)";
    let s = r.run(&one_message("a@b.test", "u@example.org", big));
    assert_eq!(s.lines()[5], exceeded);
    assert!(r.queued().is_empty(), "nothing is queued");
    // Exactly 20 stored bytes (after CRLF -> LF) fit.
    let s = r.run(&one_message("a@b.test", "u@example.org", "0123456789012345678\r\n"));
    assert_accepted(s.lines()[5]);
    // DATABYTES overrides the control file.
    let mut r = r;
    r.set_env("DATABYTES", Some("100"));
    let s = r.run(&one_message("a@b.test", "u@example.org", big));
    assert_accepted(s.lines()[5]);
    r.set_env("DATABYTES", Some("0"));
    let s = r.run(&one_message("a@b.test", "u@example.org", &big.repeat(100)));
    assert_accepted(s.lines()[5]);
}

#[test]
fn size_parameter_above_databytes_is_552_at_mail() {
    let r = Rig::new("sizemail");
    r.control("databytes", "1000\n");
    let s = r.run(&crlf(&[
        "MAIL FROM:<a@b.test> SIZE=1001",
        "RCPT TO:<u@example.org>",
        "MAIL FROM:<a@b.test> SIZE=1000",
        "QUIT",
    ]));
    assert_eq!(
        s.lines()[1..4],
        ["552 sorry, that message size exceeds my databytes limit (#5.3.4)", "503 MAIL first (#5.5.1)", "250 ok"]
    );
}

#[test]
fn timeoutsmtpd_gives_451_timeout() {
    let r = Rig::new("timeout");
    r.control("timeoutsmtpd", "1\n");
    let mut c = r.command();
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let t = std::time::Instant::now();
    let mut child = c.spawn().unwrap();
    let stdin = child.stdin.take().unwrap(); // held open, silent
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "220 mx.test ESMTP\r\n451 timeout (#4.4.2)\r\n");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn localiphost_replaces_local_ip_literals() {
    let r = Rig::new("liph");
    r.control("localiphost", "local.example.org\n").control("rcpthosts", "local.example.org\n");
    let s = r.run(&one_message("a@[192.0.2.1]", "u@[192.0.2.1]", "x\r\n"));
    assert_accepted(s.lines()[5]);
    let (from, to) = r.queued()[0].parsed_envelope();
    assert_eq!(from, "a@local.example.org");
    assert_eq!(to, ["u@local.example.org"]);
    // Not a local address: kept (and refused, not being in rcpthosts).
    let s = r.run(&crlf(&["MAIL FROM:<a@b.test>", "RCPT TO:<u@[192.0.2.99]>", "RCPT TO:<u@[IPv6:::1]>", "QUIT"]));
    assert!(s.lines()[2].starts_with("553 "), "{:?}", s.lines());
    assert_eq!(s.lines()[3], "250 ok", "[IPv6:::1] is local");
}

#[test]
fn localiphost_defaults_to_me() {
    let r = Rig::new("liphme");
    r.control("rcpthosts", "mx.test\n");
    let s = r.run(&one_message("a@b.test", "u@[127.0.0.1]", "x\r\n"));
    assert_accepted(s.lines()[5]);
    assert_eq!(r.queued()[0].parsed_envelope().1, ["u@mx.test"]);
}

#[test]
fn maxrcpt_limits_recipients_with_452() {
    let r = Rig::new("maxrcpt");
    r.control("maxrcpt", "2\n");
    let mut input = crlf(&[
        "MAIL FROM:<a@b.test>",
        "RCPT TO:<a@example.org>",
        "RCPT TO:<b@example.org>",
        "RCPT TO:<c@example.org>",
    ]);
    input.extend(crlf(&["DATA", "x", ".", "QUIT"]));
    let s = r.run(&input);
    assert_eq!(s.lines()[2..6], ["250 ok", "250 ok", "452 too many recipients (#4.5.3)", "354 go ahead"]);
    assert_eq!(r.queued()[0].parsed_envelope().1.len(), 2);
}

#[test]
fn maxrcpt_defaults_to_100() {
    let r = Rig::new("maxrcpt100");
    let mut input = crlf(&["MAIL FROM:<a@b.test>"]);
    for i in 0..101 {
        input.extend(crlf(&[&format!("RCPT TO:<u{i}@example.org>")]));
    }
    input.extend(crlf(&["DATA", "x", ".", "QUIT"]));
    let s = r.run(&input);
    assert_eq!(s.lines()[101], "250 ok");
    assert_eq!(s.lines()[102], "452 too many recipients (#4.5.3)");
    // 100 recipients spill the envelope to a file: it still arrives whole.
    assert_eq!(r.queued()[0].parsed_envelope().1.len(), 100);
}

// --- environment ----------------------------------------------------------------

#[test]
fn relayclient_skips_rcpthosts_and_is_appended() {
    let mut r = Rig::new("relay");
    r.set_env("RELAYCLIENT", Some(""));
    let s = r.run(&one_message("a@b.test", "u@far.test", "x\r\n"));
    assert_accepted(s.lines()[5]);
    assert_eq!(r.queued()[0].parsed_envelope().1, ["u@far.test"]);
    let mut r = Rig::new("relaysuffix");
    r.set_env("RELAYCLIENT", Some("@gw.test"));
    r.remove_control("rcpthosts");
    let s = r.run(&one_message("a@b.test", "u@far.test", "x\r\n"));
    assert_accepted(s.lines()[5]);
    assert_eq!(r.queued()[0].parsed_envelope().1, ["u@far.test@gw.test"]);
    assert!(!s.err.contains("rcpthosts is missing"), "no warning with RELAYCLIENT: {}", s.err);
}

#[test]
fn relay_hacks_in_the_local_part_are_refused() {
    // picoq: qmail let u%far@local through and trusted the next hop.
    let r = Rig::new("hack");
    let s = r.run(&crlf(&[
        "MAIL FROM:<a@b.test>",
        "RCPT TO:<u%far.test@example.org>",
        "RCPT TO:<far.test!u@example.org>",
        "RCPT TO:<\"u@far.test\"@example.org>",
        "RCPT TO:<u@example.org>",
        "QUIT",
    ]));
    let l = s.lines();
    for reply in &l[2..5] {
        assert!(reply.starts_with("553 "), "{reply}");
    }
    assert_eq!(l[5], "250 ok");
    // With RELAYCLIENT the client is trusted.
    let mut r = Rig::new("hackrelay");
    r.set_env("RELAYCLIENT", Some(""));
    let s = r.run(&crlf(&["MAIL FROM:<a@b.test>", "RCPT TO:<u%far.test@example.org>", "QUIT"]));
    assert_eq!(s.lines()[2], "250 ok");
}

#[test]
fn received_line_like_qmail() {
    let mut r = Rig::new("recv");
    r.set_env("TCPREMOTEINFO", Some("joe"));
    let s = r.run(&one_message("a@b.test", "u@example.org", "x\r\n"));
    assert_accepted(s.lines()[5]);
    let rl = r.queued()[0].received();
    // HELO equal to TCPREMOTEHOST (case-insensitively) is not repeated.
    let re = rl
        .strip_prefix("Received: from client.test (joe@192.0.2.7)\n  by mx.test with SMTP; ")
        .unwrap_or_else(|| panic!("{rl}"));
    assert!(re.ends_with(" -0000\n"), "{rl}");
    let date: Vec<&str> = re.trim_end().split(' ').collect();
    assert_eq!(date.len(), 5, "{rl}");
    assert!(!date[0].starts_with('0'));
    assert!(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].contains(&date[1]));

    let mut r = Rig::new("recv2");
    for k in ["TCPREMOTEIP", "TCPREMOTEHOST", "TCPLOCALHOST"] {
        r.set_env(k, None);
    }
    let mut input = crlf(&["HELO evil\tname (x)", "MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>", "DATA", "x", "."]);
    input.extend(crlf(&["QUIT"]));
    let s = r.run(&input);
    assert_accepted(s.lines()[5]);
    let rl = r.queued()[0].received();
    assert!(
        rl.starts_with("Received: from unknown (HELO evil?name??x?) (unknown)\n  by 192.0.2.1 with SMTP; "),
        "{rl}"
    );
}

#[test]
fn qmailqueue_unset_runs_home_bin_qmail_queue() {
    let mut r = Rig::new("binqq");
    std::fs::create_dir(r.home.path().join("bin")).unwrap();
    std::fs::copy(&r.queue, r.home.path().join("bin/qmail-queue")).unwrap();
    smtpd::make_executable(&r.home.path().join("bin/qmail-queue"));
    r.queue = std::path::PathBuf::from("/nonexistent");
    let mut c = r.command();
    c.env_remove("QMAILQUEUE");
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&one_message("a@b.test", "u@example.org", "x\r\n")).unwrap();
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("\r\n250 ok "), "{out}");
    assert_eq!(r.queued().len(), 1);
    r.set_env("X", None);
}

// --- DATA --------------------------------------------------------------------------

#[test]
fn data_transform_crlf_dots_and_bare_cr() {
    let r = Rig::new("transform");
    let body = "Subject: x\r\n\r\n..leading dot\r\n.x\r\nbare\rcr\r\n\r\r\n...\r\n";
    let s = r.run(&one_message("a@b.test", "u@example.org", body));
    assert_accepted(s.lines()[5]);
    assert_eq!(r.queued()[0].body(), b"Subject: x\n\n.leading dot\nx\nbare\rcr\n\r\n..\n");
}

#[test]
fn empty_message_and_nul_bytes_in_data() {
    let r = Rig::new("empty");
    let s = r.run(&one_message("a@b.test", "u@example.org", ""));
    assert_accepted(s.lines()[5]);
    assert_eq!(r.queued()[0].body(), b"");
    let r = Rig::new("nuldata");
    let s = r.run(&one_message("a@b.test", "u@example.org", "a\0b\r\n\0\r\n"));
    assert_accepted(s.lines()[5]);
    assert_eq!(r.queued()[0].body(), b"a\0b\n\0\n");
}

#[test]
fn bare_lf_in_data_is_451_and_disconnect() {
    let smtplf = "451 See https://cr.yp.to/docs/smtplf.html.";
    for body in ["a\nb\r\n", "Subject: x\r\n\r\nbody\n", "\n", "x\r\n.\n", ".\n", "x\r\r\n\n"] {
        let r = Rig::new("barelf");
        let s = r.run(&one_message("a@b.test", "u@example.org", body));
        let l = s.lines();
        assert_eq!(l[4], "354 go ahead", "{body:?}");
        assert_eq!(l[5], smtplf, "{body:?}");
        assert_eq!(l.len(), 6, "disconnected after: {body:?}");
        assert_eq!(s.code, Some(1));
        assert!(r.queued().is_empty());
    }
}

#[test]
fn hop_count_of_100_is_554() {
    let r = Rig::new("hops");
    let mut body = String::new();
    for i in 0..50 {
        body.push_str(&format!("Received: from h{i}\r\nDelivered-To: x{i}\r\n"));
    }
    body.push_str("\r\nbody\r\n");
    let s = r.run(&one_message("a@b.test", "u@example.org", &body));
    assert_eq!(s.lines()[5], "554 too many hops, this message is looping (#5.4.6)");
    assert!(r.queued().is_empty());
    // 99 hops pass; Received lines in the body do not count.
    let r = Rig::new("hops99");
    let mut body = "received: x\r\n".repeat(99);
    body.push_str("\r\n");
    body.push_str(&"Received: body\r\n".repeat(10));
    let s = r.run(&one_message("a@b.test", "u@example.org", &body));
    assert_accepted(s.lines()[5]);
}

// --- the queue's answers (SPEC §3 via qmail_close) ---------------------------------

#[test]
fn queue_exit_codes_become_qmail_close_texts() {
    for (code, reply) in [
        ("11", "554 envelope address too long for qq (#5.1.3)"),
        ("31", "554 mail server permanently rejected message (#5.3.0)"),
        ("25", "554 qq permanent problem (#5.3.0)"),
        ("53", "451 qq write error or disk full (#4.3.0)"),
        ("71", "451 mail server temporarily rejected message (#4.3.0)"),
        ("74", "451 communication with mail server failed (#4.4.2)"),
        ("91", "451 qq internal bug (#4.3.0)"),
        ("99", "451 qq temporary problem (#4.3.0)"),
    ] {
        let mut r = Rig::new("qqexit");
        r.set_env("QQ_EXIT", Some(code));
        let s = r.run(&one_message("a@b.test", "u@example.org", "x\r\n"));
        assert_eq!(s.lines()[5], reply, "exit {code}");
        assert!(s.err.contains(reply), "logged: {}", s.err);
    }
}

#[test]
fn custom_error_text_on_fd6_with_exit_82() {
    for (text, reply) in [
        ("Dno such mailbox here (#5.1.1)", "554 no such mailbox here (#5.1.1)"),
        ("Zgateway busy\r\n250 fake", "451 gateway busy??250 fake"),
        ("garbage", "451 qq temporary problem (#4.3.0)"),
    ] {
        let mut r = Rig::new("fd6");
        r.set_env("QQ_EXIT", Some("82")).set_env("QQ_FD6", Some(text));
        let s = r.run(&one_message("a@b.test", "u@example.org", "x\r\n"));
        assert_eq!(s.lines()[5], reply, "{text:?}");
    }
}

#[test]
fn crashed_or_missing_queue_program() {
    let r = Rig::new("crash");
    std::fs::write(&r.queue, "#!/bin/sh\nkill -9 $$\n").unwrap();
    let s = r.run(&one_message("a@b.test", "u@example.org", "x\r\n"));
    assert_eq!(s.lines()[5], "451 qq crashed (#4.3.0)");
    std::fs::remove_file(&r.queue).unwrap();
    let s = r.run(&one_message("a@b.test", "u@example.org", "x\r\n"));
    assert_eq!(s.lines()[5], "451 unable to exec qq (#4.3.0)");
    assert_eq!(s.lines()[6], "221 mx.test", "the session goes on");
}

#[test]
fn unwritable_tmpdir_is_qqt_failure() {
    let mut r = Rig::new("qqt");
    r.set_env("TMPDIR", Some("/nonexistent/picoq"));
    let s = r.run(&one_message("a@b.test", "u@example.org", "x\r\n"));
    assert_eq!(s.lines()[4], "451 qqt failure (#4.3.0)");
    // The "message" is then read as commands: qmail does the same.
    assert_eq!(s.lines().last(), Some(&"221 mx.test"));
}
