//! `faultline report` rendered in headless Chromium: a shipped failing seed's page
//! must draw every lane, outline the linearizability witness and raise no script
//! error; a run too large to draw whole must still open and say what it left out;
//! bad folders exit 2 naming what is missing or malformed.
//!
//! Needs Chromium (`/usr/bin/chromium`, Debian's `chromium` package; `.ci/run`
//! installs it). Without it these tests fail, saying so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_faultline");
/// Wall-clock bound on one Chromium run.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

fn chromium() -> PathBuf {
    let candidates = [
        std::env::var_os("CHROMIUM").map(PathBuf::from),
        Some(PathBuf::from("/usr/bin/chromium")),
        Some(PathBuf::from("/usr/bin/chromium-browser")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium not found (looked for $CHROMIUM, /usr/bin/chromium, \
                 /usr/bin/chromium-browser): the report tests need it. .ci/run installs it \
                 (apt-get install -y chromium)."
            )
        })
}

/// Runs Chromium headless on `url` with `extra` flags, bounded in time; its stdout.
fn browse(url: &str, extra: &[String], profile: &Path) -> String {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut { stdout }, &mut out).map(|_| out)
    });
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            panic!("chromium did not finish {url} within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().expect("reader").expect("chromium's output")
}

/// The page's DOM after its script ran.
fn dump_dom(page: &Path, scratch: &Path) -> String {
    let url = format!(
        "file://{}",
        page.canonicalize().expect("the page").display()
    );
    browse(&url, &["--dump-dom".to_string()], &scratch.join("profile"))
}

fn faultline(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run faultline")
}

/// The value of the first `name="..."` attribute in `dom`.
fn attr<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let start = dom.find(&format!("{name}=\""))? + name.len() + 2;
    let end = start + dom[start..].find('"')?;
    Some(&dom[start..end])
}

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"))
        .display()
        .to_string()
}

/// The rendered page of a clean run: drawn, with no script error recorded.
fn assert_rendered(dom: &str) {
    assert_eq!(
        attr(dom, "data-rendered"),
        Some("1"),
        "the page's script did not finish"
    );
    assert_eq!(attr(dom, "data-errors"), Some(""), "script errors");
    for lane in [
        "lane-messages",
        "lane-faults",
        "lane-protocol",
        "lane-history",
    ] {
        assert!(dom.contains(&format!("id=\"{lane}\"")), "no {lane}");
    }
}

#[test]
fn a_stale_read_report_outlines_the_witness_in_chromium() {
    let dir = scratch("stale-read");
    let run = faultline(
        &["run", &scenario("raft-stale-read-follower"), "--seed", "0"],
        &dir,
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let seed_dir = dir.join("results/raft-stale-read-follower/seed-0");
    let page = seed_dir.join("report.html");
    assert!(
        page.is_file(),
        "the run wrote no report.html for its failing seed"
    );

    // What the page must outline: the witness `faultline check` reports, counted
    // from its text report (independently of the page).
    let check = faultline(&["check", "history.jsonl"], &seed_dir);
    let text = String::from_utf8_lossy(&check.stdout);
    let witness: usize = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("These "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<usize>().ok())
        .sum();
    assert!(
        witness > 0,
        "the seed's history should not be linearizable:\n{text}"
    );

    let dom = dump_dom(&page, &dir);
    assert_rendered(&dom);
    let arrows: usize = attr(&dom, "data-arrows-drawn").unwrap().parse().unwrap();
    assert!(arrows > 1000, "only {arrows} message arrows drawn");
    assert_eq!(attr(&dom, "data-protocol"), Some("raft"));
    assert!(
        dom.contains("class=\"pspan pspan-leader\""),
        "no Raft leadership drawn"
    );
    assert!(
        dom.contains("class=\"fault fault-isolate\""),
        "no isolate fault drawn"
    );
    let outlined = dom.matches(" witness\" data-line=").count();
    assert_eq!(outlined, witness, "witness operations outlined");
    assert_eq!(
        attr(&dom, "data-witness-drawn")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        witness
    );
    assert!(
        dom.contains("class=\"stuck\""),
        "no line where the linearization got stuck"
    );
    assert!(dom.contains("have no linearization"), "no witness note");
    assert!(
        dom.contains("history `linearizability`"),
        "no failure heading"
    );
    assert!(
        dom.contains("faultline replay ") && dom.contains("faultline shrink "),
        "no replay and shrink commands"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_figure8_report_shows_crashes_leaders_and_the_failure() {
    let dir = scratch("figure8");
    let run = faultline(
        &[
            "run",
            &scenario("raft-figure8"),
            "--seed",
            "7",
            "--bug",
            "figure8-commit",
        ],
        &dir,
    );
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let seed_dir = dir.join("results/raft-figure8/seed-7");
    // `faultline report` rewrites the page the run wrote.
    std::fs::remove_file(seed_dir.join("report.html")).unwrap();
    let out = faultline(&["report", &seed_dir.display().to_string()], &dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = dump_dom(&seed_dir.join("report.html"), &dir);
    assert_rendered(&dom);
    assert!(dom.contains("class=\"state state-down\""), "no crash drawn");
    assert!(
        dom.contains("class=\"fault fault-crash\""),
        "no crash fault lane"
    );
    assert!(
        dom.contains("class=\"fault fault-isolate\""),
        "no isolation fault lane"
    );
    let leaders = dom.matches("class=\"pspan pspan-leader\"").count();
    assert!(
        leaders >= 2,
        "figure 8 needs several leaderships, {leaders} drawn"
    );
    assert!(dom.contains("leader-completeness"), "no failure heading");
    assert!(
        dom.contains("--bug figure8-commit"),
        "the replay command lacks the bug"
    );
    assert!(dom.contains("class=\"failure-line\""), "no failure marker");

    // Zoom and filter, as a user would: the page's own buttons and checkboxes.
    let page = std::fs::read_to_string(seed_dir.join("report.html")).unwrap();
    let probe = r#"<script>
      var drawn = function () { return +document.getElementById("messages-canvas").getAttribute("data-arrows-drawn"); };
      var all = drawn();
      document.getElementById("zoom-in").click(); document.getElementById("zoom-in").click(); renderAll();
      var zoomed = drawn();
      document.querySelector('input[data-class="append"]').click(); renderAll();
      var filtered = drawn();
      document.body.setAttribute("data-probe", all + " " + zoomed + " " + filtered);
    </script></body>"#;
    let probed = seed_dir.join("probe.html");
    std::fs::write(&probed, page.replacen("</body>", probe, 1)).unwrap();
    let dom = dump_dom(&probed, &dir);
    assert_eq!(attr(&dom, "data-errors"), Some(""), "script errors");
    let counts: Vec<usize> = attr(&dom, "data-probe")
        .expect("the probe ran")
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        counts[1] < counts[0],
        "zooming in drew no fewer arrows: {counts:?}"
    );
    assert!(
        counts[2] < counts[1],
        "hiding `append` drew no fewer arrows: {counts:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A synthetic seed folder: `messages` node messages between 5 nodes, each sent
/// and delivered 1 ms later, and one client operation.
fn synthetic(dir: &Path, messages: u64) {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("summary.json"),
        r#"{"seed":9,"status":"failed","failure":{"kind":"invariant","check":"synthetic","message":"made up","time_ns":1000000000},"trace_hash":"0"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("schedule.toml"), "seed = 9\n").unwrap();
    let mut t = std::io::BufWriter::new(std::fs::File::create(dir.join("trace.jsonl")).unwrap());
    for m in 0..messages {
        let (from, to, at) = (m % 5, (m + 1) % 5, m * 20_000);
        writeln!(t, r#"{{"time_ns":{at},"actor":"n{from}","event":"send","detail":"","msg":{m},"peer":"n{to}","class":"append"}}"#).unwrap();
        writeln!(t, r#"{{"time_ns":{},"actor":"n{to}","event":"deliver","detail":"","msg":{m},"peer":"n{from}","class":"append"}}"#, at + 1_000_000).unwrap();
    }
    t.flush().unwrap();
    std::fs::write(
        dir.join("history.jsonl"),
        "{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\",\"value\":null,\"time_ns\":5}\n",
    )
    .unwrap();
}

#[test]
fn a_run_too_large_to_draw_whole_opens_and_says_what_it_left_out() {
    let dir = scratch("large");
    let seed_dir = dir.join("seed-9");
    synthetic(&seed_dir, 60_000);
    let out = faultline(&["report", &seed_dir.display().to_string()], &dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = Instant::now();
    let dom = dump_dom(&seed_dir.join("report.html"), &dir);
    assert_rendered(&dom);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "rendering took {:?}",
        started.elapsed()
    );
    assert!(
        dom.contains("This run has 60000 messages"),
        "no note on the window"
    );
    assert!(dom.contains("are left out"), "no note on what was left out");
    let drawn: usize = attr(&dom, "data-arrows-drawn").unwrap().parse().unwrap();
    assert!(
        drawn > 0 && drawn <= faultline::report::MESSAGES_MAX,
        "{drawn} arrows drawn"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_folder_without_artifacts_exits_2_naming_the_missing_file() {
    let dir = scratch("missing");
    let out = faultline(&["report", "."], &dir);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no summary.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_malformed_trace_line_exits_2_with_its_file_and_line() {
    let dir = scratch("malformed");
    synthetic(&dir, 3);
    let trace = dir.join("trace.jsonl");
    let mut text = std::fs::read_to_string(&trace).unwrap();
    text.push_str("{\"time_ns\":\"soon\",\"actor\":\"n0\",\"event\":\"send\"}\n");
    std::fs::write(&trace, text).unwrap();
    let out = faultline(&["report", "."], &dir);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("trace.jsonl:7: expected a trace record"),
        "{err}"
    );
    assert!(
        !dir.join("report.html").exists(),
        "a page written from bad input"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
