//! The kustomize runner against fake kubectl programs: one that never finishes (and
//! starts a child of its own) is stopped at the timeout with its child, one that fails
//! the way kubectl does is reported with its whole message, and a missing one is named.
//! A real `kubectl kustomize` renders the walk's overlay where kubectl is installed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use manifests::kustomize::{Kustomize, RenderError, is_kustomization};

/// Writing a script while another thread forks can leave the script open for writing in
/// that child ("text file busy" when run): the tests that write and run one take turns.
static SCRIPTS: Mutex<()> = Mutex::new(());

/// A kustomize directory and an executable `kubectl` script in a fresh temporary folder
/// (`{TMP}` in the script stands for that folder).
fn fake(script: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let script = script.replace("{TMP}", &tmp.path().display().to_string());
    let dir = tmp.path().join("overlay");
    std::fs::create_dir(&dir).expect("overlay directory");
    std::fs::write(dir.join("kustomization.yaml"), "resources: []\n").expect("kustomization");
    let kubectl = tmp.path().join("kubectl");
    std::fs::write(&kubectl, script).expect("script");
    std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (tmp, dir, kubectl)
}

fn runner(kubectl: &Path, timeout: Duration) -> Kustomize {
    Kustomize {
        program: kubectl.display().to_string(),
        timeout,
    }
}

/// Whether the process `pid` has ended (gone, or a zombie waiting for its parent).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // `pid (comm) S ...`: the state follows the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Kills the processes left when a test fails.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            if !ended(*pid)
                && let Some(pid) = i32::try_from(*pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

#[test]
fn a_kubectl_that_never_finishes_is_stopped_at_the_timeout_with_what_it_started() {
    let _turn = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
    // Like kustomize waiting on git for a remote base that never answers: a child of its
    // own holds the output pipe open too.
    let (tmp, dir, kubectl) = fake("#!/bin/sh\nsleep 300 &\necho \"$$ $!\" > '{TMP}/pids'\nwait\n");
    let pids_file = tmp.path().join("pids");

    let err = runner(&kubectl, Duration::from_secs(2))
        .render(&dir)
        .expect_err("a render that never ends fails");
    assert!(matches!(err, RenderError::TimedOut { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("kustomize") && text.contains("did not finish within 2 s"),
        "{text}"
    );

    let pids = std::fs::read_to_string(&pids_file).expect("the script wrote its pids");
    let pids: Vec<u32> = pids
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    let _cleanup = KillOnDrop(pids.clone());
    // SIGKILL is delivered at once, but the kernel ends a process (and its parent reaps
    // it) in its own time: wait for that, boundedly.
    for _ in 0..500 {
        if pids.iter().all(|p| ended(*p)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in &pids {
        assert!(ended(*pid), "process {pid} outlived the timeout");
    }
}

#[test]
fn a_failing_kubectl_is_reported_with_its_whole_message() {
    let _turn = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
    // kubectl's own stderr for a resource with a duplicate key (kubectl 1.32): klog's
    // header, the structured record, and a value over several lines.
    let stderr =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubectl/duplicate-key.stderr");
    let (_tmp, dir, kubectl) = fake(&format!(
        "#!/bin/sh\ncat '{}' >&2\nexit 1\n",
        stderr.display()
    ));
    let err = runner(&kubectl, Duration::from_secs(30))
        .render(&dir)
        .expect_err("kubectl failed");
    let RenderError::Failed { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        message,
        "map[string]interface {}(nil): yaml: unmarshal errors: line 5: mapping key \"name\" already defined at line 4"
    );
    let text = err.to_string();
    assert!(
        text.contains("kustomize") && text.contains("failed (exit status: 1): map[string]"),
        "{text}"
    );
    assert!(
        !text.contains("run.go") && !text.contains("err=<"),
        "{text}"
    );
}

#[test]
fn a_missing_kubectl_is_named() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path().join("overlay");
    std::fs::create_dir(&dir).expect("overlay directory");
    std::fs::write(dir.join("kustomization.yaml"), "resources: []\n").expect("kustomization");
    assert!(is_kustomization(&dir));
    assert!(!is_kustomization(tmp.path()));
    let err = runner(&tmp.path().join("no-kubectl"), Duration::from_secs(5))
        .render(&dir)
        .expect_err("no kubectl");
    assert!(matches!(err, RenderError::NoKubectl { .. }), "{err:?}");
}

#[test]
#[ignore = "needs kubectl: .ci/run installs it"]
fn kubectl_renders_the_walks_overlay() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kustomize/overlays/2-canary-10");
    let set = manifests::read_rendering(&[dir.display().to_string()], &Kustomize::default())
        .expect("renders");
    assert_eq!(set.resources.len(), 6, "{:?}", set.resources);
    assert!(
        set.resources[0].origin.starts_with("kubectl kustomize "),
        "{}",
        set.resources[0].origin
    );
    // Read as a plain directory, the overlay holds no resource: only its kustomization.
    let plain = manifests::read(&[dir.display().to_string()]).expect("reads");
    assert!(plain.resources.is_empty());
}
