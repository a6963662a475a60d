//! The Kubernetes example (`examples/kubernetes/`) keeps the promises the README
//! makes for it: two `watch` replicas on one record in PostgreSQL (one leads, one stands
//! by), the key and the database's password from Secrets, health probes on the watch
//! port, Prometheus scraping, and the `restricted` pod security profile. Every YAML
//! document there is read. The systemd example's PostgreSQL lines are checked too.

use serde_json::Value;
use std::path::{Path, PathBuf};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/kubernetes");

/// Every document of every YAML file, with the file it came from.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML in {DIR}");
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", file.display()));
        documents.extend(parsed.into_iter().filter(|d| !d.is_null()).map(|d| (file.clone(), d)));
    }
    documents
}

fn of_kind<'a>(documents: &'a [(PathBuf, Value)], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|(_, d)| d["kind"] == kind).map(|(_, d)| d).collect()
}

fn one<'a>(documents: &'a [(PathBuf, Value)], kind: &str) -> &'a Value {
    let found = of_kind(documents, kind);
    assert_eq!(found.len(), 1, "exactly one {kind}");
    found[0]
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// The value of `--name=value` (or `--name value`) among `args`.
fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, arg)| match arg.strip_prefix(name) {
        Some(rest) if rest.starts_with('=') => Some(&rest[1..]),
        Some("") => args.get(i + 1).copied(),
        _ => None,
    })
}

/// The volume mounted at the directory holding `path` in `container`, and the mount.
fn volume_of<'a>(pod: &'a Value, container: &'a Value, path: &str) -> (&'a Value, &'a Value) {
    let mount = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| Path::new(path).starts_with(m["mountPath"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("{path} is on no volume of {}", container["name"]));
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {}", mount["name"]));
    (volume, mount)
}

#[test]
fn the_kustomization_names_every_manifest() {
    let documents = documents();
    let kustomization = one(&documents, "Kustomization");
    let mut listed: Vec<&str> = strings(&kustomization["resources"]);
    listed.sort_unstable();
    let mut files: Vec<String> = documents
        .iter()
        .filter(|(_, d)| d["kind"] != "Kustomization")
        .map(|(f, _)| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    files.dedup();
    assert_eq!(listed, files);
}

/// The value of the variable `name` in `container`'s environment: its `value`, or where
/// its `valueFrom` points.
fn env_of<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"].as_array().into_iter().flatten().find(|e| e["name"] == name)
}

#[test]
fn two_replicas_share_one_record_in_postgres_and_the_key_comes_from_a_secret() {
    let documents = documents();
    let deployment = one(&documents, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2, "one leads, one stands by");
    // A rolling update never has fewer than two pods: the new pod is ready as a standby
    // (/readyz 200) before an old one goes, so a leader is always there to hand over to.
    let strategy = &deployment["spec"]["strategy"];
    assert_eq!(strategy["type"], "RollingUpdate", "{strategy}");
    assert_eq!(strategy["rollingUpdate"]["maxUnavailable"], 0, "{strategy}");
    assert_eq!(strategy["rollingUpdate"]["maxSurge"], 1, "{strategy}");
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    let grattr = containers.iter().find(|c| c["name"] == "grattr").expect("a grattr container");
    let args = strings(&grattr["args"]);
    assert_eq!(args.first(), Some(&"watch"));
    assert_eq!(flag(&args, "--listen"), Some("0.0.0.0:9464"));

    let key = flag(&args, "--secret-key-file").expect("--secret-key-file");
    let (volume, mount) = volume_of(pod, grattr, key);
    let secret = &volume["secret"];
    assert!(secret["secretName"].is_string(), "the key comes from a Secret: {volume}");
    assert_eq!(mount["readOnly"], true);
    let file = Path::new(key).strip_prefix(mount["mountPath"].as_str().unwrap()).unwrap();
    assert!(
        secret["items"].as_array().unwrap().iter().any(|i| Path::new(i["path"].as_str().unwrap()) == file),
        "the Secret provides {key}"
    );

    // The record: in PostgreSQL, named by a ConfigMap, never on a volume of one pod.
    assert!(flag(&args, "--state-dir").is_none() && flag(&args, "--state").is_none(), "{args:?}");
    assert!(env_of(grattr, "GRATTR_STATE_DIR").is_none(), "no state directory");
    // Nor from the image: the pod inherits its ENV, and grattr refuses GRATTR_STATE beside
    // GRATTR_STATE_DIR (a variable Kubernetes cannot unset). The image's own CMD names it.
    let dockerfile = read("Dockerfile");
    let env_lines: Vec<&str> = dockerfile
        .lines()
        .skip_while(|l| !l.starts_with("FROM gcr.io/distroless/"))
        .skip_while(|l| !l.starts_with("ENV "))
        .take_while(|l| l.starts_with("ENV ") || l.starts_with("    "))
        .collect();
    assert!(!env_lines.iter().any(|l| l.contains("GRATTR_STATE_DIR")), "the image's ENV: {env_lines:?}");
    let cmd = dockerfile.lines().find(|l| l.starts_with("CMD ")).expect("a CMD");
    assert!(cmd.contains(r#""--state-dir", "/var/lib/grattr""#), "the default CMD keeps its volume: {cmd}");
    assert!(of_kind(&documents, "PersistentVolumeClaim").is_empty(), "no volume for the record");
    let state = env_of(grattr, "GRATTR_STATE").expect("GRATTR_STATE");
    let reference = &state["valueFrom"]["configMapKeyRef"];
    let map = of_kind(&documents, "ConfigMap")
        .into_iter()
        .find(|m| m["metadata"]["name"] == reference["name"])
        .unwrap_or_else(|| panic!("no ConfigMap {}", reference["name"]));
    let url = map["data"][reference["key"].as_str().unwrap()].as_str().expect("the URL in the ConfigMap");
    let rest = url.strip_prefix("postgres://").unwrap_or_else(|| panic!("a PostgreSQL URL: {url}"));
    let user_info = rest.split_once('@').map(|(user, _)| user).expect("a user");
    assert!(!user_info.contains(':'), "no password in the URL: {url}");
    assert!(url.contains("sslmode=verify-full"), "TLS that checks the server: {url}");
    let password = &env_of(grattr, "PGPASSWORD").expect("PGPASSWORD")["valueFrom"]["secretKeyRef"];
    assert!(password["name"].is_string() && password["key"].is_string(), "the password from a Secret");
    // The lease is stated: a standby takes over within it.
    let ttl = env_of(grattr, "GRATTR_LEASE_TTL").expect("GRATTR_LEASE_TTL")["value"].as_str().unwrap();
    let ttl = humantime::parse_duration(ttl).unwrap();
    assert!((1..=3600).contains(&ttl.as_secs()), "{ttl:?}");

    // Voluntary disruptions (a node drained) keep one pod, and the two replicas prefer two nodes.
    let budget = one(&documents, "PodDisruptionBudget");
    assert_eq!(budget["spec"]["minAvailable"], 1);
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in budget["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[key], value, "the budget selects the pod");
    }
    let spread = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(spread["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname", "{spread}");
}

#[test]
fn the_repository_comes_from_git_sync_read_only() {
    let documents = documents();
    let pod = &one(&documents, "Deployment")["spec"]["template"]["spec"];
    let grattr = pod["containers"].as_array().unwrap().iter().find(|c| c["name"] == "grattr").unwrap();
    let config = grattr["env"].as_array().unwrap().iter().find(|e| e["name"] == "GRATTR_CONFIG").unwrap()["value"]
        .as_str()
        .unwrap();
    let (volume, mount) = volume_of(pod, grattr, config);
    assert!(volume["emptyDir"].is_object(), "{volume}");
    assert_eq!(mount["readOnly"], true, "grattr never writes into the checkout");

    let syncs: Vec<&Value> = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["image"].as_str().unwrap().starts_with("registry.k8s.io/git-sync/git-sync:v4."))
        .collect();
    assert_eq!(syncs.len(), 1, "a git-sync sidecar");
    let args = strings(&syncs[0]["args"]);
    let (root, link) = (flag(&args, "--root").unwrap(), flag(&args, "--link").unwrap());
    assert!(flag(&args, "--repo").is_some() && flag(&args, "--period").is_some(), "{args:?}");
    assert_eq!(
        Path::new(config),
        Path::new(root).join(link).join("grattr.yaml"),
        "the config is read through the link"
    );
    let (sync_volume, _) = volume_of(pod, syncs[0], root);
    assert_eq!(sync_volume["name"], volume["name"], "one shared volume");
}

#[test]
fn probes_and_scraping_use_the_watch_port() {
    let documents = documents();
    let template = &one(&documents, "Deployment")["spec"]["template"];
    let grattr = template["spec"]["containers"].as_array().unwrap().iter().find(|c| c["name"] == "grattr").unwrap();
    let port = grattr["ports"].as_array().unwrap().iter().find(|p| p["containerPort"] == 9464).expect("port 9464");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &grattr[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(get["port"] == 9464 || get["port"] == port["name"], "{probe} on 9464: {get}");
    }
    let service = one(&documents, "Service");
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(service_port["port"], 9464);
    assert_eq!(service_port["targetPort"], port["name"]);
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&template["metadata"]["labels"][key], value, "the Service selects the pod");
    }
    let monitor = one(&documents, "ServiceMonitor");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], service_port["name"]);
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"]);
}

#[test]
fn every_container_meets_the_restricted_profile() {
    let documents = documents();
    let namespace = one(&documents, "Namespace");
    assert_eq!(namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
    let pod = &one(&documents, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["automountServiceAccountToken"], false);
    let all =
        pod["containers"].as_array().unwrap().iter().chain(pod["initContainers"].as_array().into_iter().flatten());
    let mut count = 0;
    for container in all {
        let context = &container["securityContext"];
        let name = &container["name"];
        assert_eq!(context["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(context["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(strings(&context["capabilities"]["drop"]), ["ALL"], "{name}");
        assert!(context["capabilities"]["add"].is_null(), "{name}");
        assert!(context["runAsUser"].as_u64().is_some_and(|u| u > 0), "{name} runs as a numeric non-root user");
        assert!(context["privileged"].is_null() || context["privileged"] == false, "{name}");
        count += 1;
    }
    assert_eq!(count, 3, "grattr, git-sync and its first sync");
}

// ---------------------------------------------------------------------------------------------
// what `kubectl apply -k` receives

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The kustomization's fields that [`rendered`] knows how to apply, as kustomize does.
const KUSTOMIZATION_FIELDS: [&str; 4] = ["apiVersion", "kind", "namespace", "resources"];

/// The objects `kubectl kustomize examples/kubernetes` renders: every document of every listed
/// resource, with the kustomization's `namespace` set on each object, and given as the name of
/// the Namespace object, as kustomize's namespace transformer does. When kubectl is installed
/// (Debian's `kubectl`, which bundles kustomize), its own rendering must be the same objects.
fn rendered() -> Vec<Value> {
    let text = std::fs::read_to_string(Path::new(DIR).join("kustomization.yaml")).unwrap();
    let kustomization: Value = serde_saphyr::from_str(&text).unwrap();
    for field in kustomization.as_object().unwrap().keys() {
        assert!(
            KUSTOMIZATION_FIELDS.contains(&field.as_str()),
            "kustomization.yaml uses `{field}`, which this test does not render: teach `rendered` it"
        );
    }
    let namespace = kustomization["namespace"].as_str();
    let mut objects = Vec::new();
    for resource in strings(&kustomization["resources"]) {
        let text = std::fs::read_to_string(Path::new(DIR).join(resource)).unwrap();
        for mut object in serde_saphyr::from_multiple::<Value>(&text).unwrap().into_iter().filter(|d| !d.is_null()) {
            if let Some(namespace) = namespace {
                let field = if object["kind"] == "Namespace" { "name" } else { "namespace" };
                object["metadata"][field] = Value::from(namespace);
            }
            objects.push(object);
        }
    }
    objects.sort_by_key(identity);
    if let Some(kubectl) = kubectl() {
        let out = std::process::Command::new(kubectl).args(["kustomize", DIR]).output().unwrap();
        assert!(out.status.success(), "kubectl kustomize {DIR}: {}", String::from_utf8_lossy(&out.stderr));
        let mut theirs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
        theirs.retain(|d| !d.is_null());
        theirs.sort_by_key(identity);
        let names = |objects: &[Value]| objects.iter().map(identity).collect::<Vec<_>>();
        assert_eq!(names(&theirs), names(&objects), "kubectl kustomize renders other objects than this test reads");
        for (theirs, ours) in theirs.iter().zip(&objects) {
            assert_eq!(
                theirs,
                ours,
                "kubectl kustomize renders {:?} otherwise than this test reads it",
                identity(ours)
            );
        }
    } else {
        eprintln!("kubectl is not installed: the kustomization was rendered by this test alone");
    }
    objects
}

/// kubectl on the PATH, if installed.
fn kubectl() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join("kubectl")).find(|p| p.is_file())
}

fn identity(object: &Value) -> (String, String) {
    (object["kind"].to_string(), object["metadata"]["name"].to_string())
}

fn rendered_one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "exactly one {kind} rendered");
    found[0]
}

#[test]
fn every_rendered_object_lives_in_the_namespace_the_kustomization_creates() {
    let objects = rendered();
    let namespace = rendered_one(&objects, "Namespace")["metadata"]["name"].as_str().unwrap().to_owned();
    for object in objects.iter().filter(|o| o["kind"] != "Namespace") {
        assert_eq!(object["metadata"]["namespace"], namespace.as_str(), "{}", object["kind"]);
    }
    // The file applied on its own (before the Secret exists) creates that same namespace.
    let file = one(&documents(), "Namespace")["metadata"]["name"].clone();
    assert_eq!(file, namespace.as_str(), "namespace.yaml names the kustomization's namespace");
}

/// The `kubectl` commands of a how-to, in order (from shell lines or `#`-comments).
fn kubectl_steps(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.trim_start_matches(|c: char| c == '#' || c.is_whitespace()))
        .filter(|l| l.starts_with("kubectl "))
        .map(|l| l.split('#').next().unwrap().split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// A Secret a step created: its namespace, name and keys.
type CreatedSecret = (String, String, Vec<String>);

/// Runs the steps against a model of a cluster: the namespaces and the Secrets that exist
/// after them, or the first step that a cluster would refuse.
fn follow(steps: &[Vec<String>]) -> Result<(Vec<String>, Vec<CreatedSecret>), String> {
    let (mut namespaces, mut secrets) = (Vec::new(), Vec::new());
    for step in steps {
        let args: Vec<&str> = step.iter().map(String::as_str).collect();
        let namespace = flag(&args, "-n").or(flag(&args, "--namespace"));
        match args.iter().position(|a| ["apply", "create"].contains(a)).map(|i| &args[i..]) {
            Some(["apply", "-f", path, ..]) => {
                let text = std::fs::read_to_string(Path::new(ROOT).join(path)).map_err(|e| format!("{path}: {e}"))?;
                for d in
                    serde_saphyr::from_multiple::<Value>(&text).unwrap().iter().filter(|d| d["kind"] == "Namespace")
                {
                    namespaces.push(d["metadata"]["name"].as_str().unwrap().to_owned());
                }
            }
            Some(["create", "secret", "generic", name, rest @ ..]) => {
                let namespace = namespace.ok_or(format!("{step:?}: no -n"))?;
                if !namespaces.iter().any(|n| n == namespace) {
                    return Err(format!("{step:?}: the namespace {namespace} does not exist yet"));
                }
                let keys = rest
                    .iter()
                    .filter_map(|a| a.strip_prefix("--from-file="))
                    .map(|f| f.split_once('=').map_or(f, |(key, _)| key).to_owned())
                    .collect();
                secrets.push((namespace.to_owned(), (*name).to_owned(), keys));
            }
            Some(["apply", "-k", dir, ..]) => {
                assert_eq!(Path::new(ROOT).join(dir), Path::new(DIR), "{step:?}");
                let objects = rendered();
                namespaces.extend(
                    objects
                        .iter()
                        .filter(|o| o["kind"] == "Namespace")
                        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned()),
                );
                for object in &objects {
                    if let Some(namespace) = object["metadata"]["namespace"].as_str()
                        && !namespaces.iter().any(|n| n == namespace)
                    {
                        return Err(format!("{step:?}: {} in the missing namespace {namespace}", object["kind"]));
                    }
                }
            }
            _ => return Err(format!("{step:?}: a step this test does not know")),
        }
    }
    Ok((namespaces, secrets))
}

/// Every Secret the pod reads, with the keys it reads of it: as volumes and as variables.
fn secrets_read(pod: &Value) -> Vec<(String, Vec<String>)> {
    let mut read: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |name: &str, key: &str| match read.iter_mut().find(|(n, _)| n == name) {
        Some((_, keys)) => keys.push(key.to_owned()),
        None => read.push((name.to_owned(), vec![key.to_owned()])),
    };
    for volume in pod["volumes"].as_array().into_iter().flatten().filter(|v| v["secret"].is_object()) {
        for item in volume["secret"]["items"].as_array().unwrap() {
            add(volume["secret"]["secretName"].as_str().unwrap(), item["key"].as_str().unwrap());
        }
    }
    let containers = pod["containers"].as_array().into_iter().chain(pod["initContainers"].as_array()).flatten();
    for env in containers.flat_map(|c| c["env"].as_array().into_iter().flatten()) {
        let reference = &env["valueFrom"]["secretKeyRef"];
        if reference.is_object() {
            add(reference["name"].as_str().unwrap(), reference["key"].as_str().unwrap());
        }
    }
    read
}

#[test]
fn the_documented_steps_create_the_secrets_where_the_pod_reads_them() {
    let objects = rendered();
    let deployment = rendered_one(&objects, "Deployment");
    let namespace = deployment["metadata"]["namespace"].as_str().unwrap();
    let read = secrets_read(&deployment["spec"]["template"]["spec"]);
    let names: Vec<&str> = read.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.len(), 2, "the secret key and the database's password: {names:?}");

    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let section = readme.split("#### Kubernetes").nth(1).expect("the README's Kubernetes section");
    let section = section.split("\n#").next().unwrap();
    let kustomization = std::fs::read_to_string(Path::new(DIR).join("kustomization.yaml")).unwrap();
    for (name, text) in [("README.md", section), ("kustomization.yaml", kustomization.as_str())] {
        let steps = kubectl_steps(text);
        assert!(steps.iter().any(|s| s.contains(&"-k".to_owned())), "{name}: no `kubectl apply -k` in {steps:?}");
        let (_, secrets) = follow(&steps).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (secret_name, wanted) in &read {
            let found = secrets.iter().find(|(n, s, _)| n == namespace && s == secret_name);
            let (_, _, keys) =
                found.unwrap_or_else(|| panic!("{name}: no step creates {namespace}/{secret_name}: {secrets:?}"));
            for key in wanted {
                assert!(keys.iter().any(|k| k == key), "{name}: {secret_name} lacks the key {key}: {keys:?}");
            }
        }
    }
}

#[test]
fn metrics_have_one_scrape_path_that_keeps_a_pod_that_is_not_ready() {
    let objects = rendered();
    for object in &objects {
        for at in [&object["metadata"]["annotations"], &object["spec"]["template"]["metadata"]["annotations"]] {
            let keys: Vec<&String> = at.as_object().into_iter().flat_map(|a| a.keys()).collect();
            assert!(
                !keys.iter().any(|k| k.starts_with("prometheus.io/")),
                "{}: prometheus.io annotations beside the ServiceMonitor scrape the target twice: {keys:?}",
                object["kind"]
            );
        }
    }
    let monitors: Vec<&Value> =
        objects.iter().filter(|o| o["kind"] == "ServiceMonitor" || o["kind"] == "PodMonitor").collect();
    assert_eq!(monitors.len(), 1, "one scrape path");
    let endpoints = monitors[0]["spec"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "one scrape per target");
    assert_eq!(endpoints[0]["path"], "/metrics");
    // `/readyz` answers 503 while the desired state is invalid or the guard refuses: the pod
    // is then not ready, which must not take it off the Service the ServiceMonitor reads.
    let service = rendered_one(&objects, "Service");
    assert_eq!(service["spec"]["publishNotReadyAddresses"], true, "a pod that is not ready is still scraped");
    let deployment = rendered_one(&objects, "Deployment");
    let grattr =
        deployment["spec"]["template"]["spec"]["containers"].as_array().unwrap().iter().find(|c| c["name"] == "grattr");
    assert_eq!(grattr.unwrap()["readinessProbe"]["httpGet"]["path"], "/readyz", "readiness still shows in kubectl");
}

#[test]
fn no_secret_material_in_the_manifests() {
    let objects = rendered();
    for object in &objects {
        let kind = &object["kind"];
        assert!(kind != "Secret", "a Secret in the manifests: create it from a file (see kustomization.yaml)");
        let pod = &object["spec"]["template"]["spec"];
        let containers = pod["containers"].as_array().into_iter().chain(pod["initContainers"].as_array()).flatten();
        for container in containers {
            for env in container["env"].as_array().into_iter().flatten() {
                let name = env["name"].as_str().unwrap().to_ascii_uppercase();
                let sensitive = ["SECRET", "KEY", "TOKEN", "PASSWORD"].iter().any(|s| name.contains(s));
                assert!(!sensitive || env["value"].is_null(), "{kind}: {name} given in clear, not from a Secret");
            }
            for arg in strings(&container["args"]) {
                assert!(!arg.starts_with("--secret-key="), "{kind}: the key on the command line");
            }
        }
    }
    let text = std::fs::read_to_string(Path::new(DIR).join("kustomization.yaml")).unwrap();
    let kustomization: Value = serde_saphyr::from_str(&text).unwrap();
    assert!(kustomization["secretGenerator"].is_null(), "a secret generated from files beside the manifests");
}

// ---------------------------------------------------------------------------------------------
// the image the example runs, and the release that publishes it

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn pinned(uses: &str) -> bool {
    uses.split_once('@').is_some_and(|(_, sha)| sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn the_release_publishes_the_multi_arch_image_the_example_runs() {
    let objects = rendered();
    let pod = &rendered_one(&objects, "Deployment")["spec"]["template"]["spec"];
    let grattr = pod["containers"].as_array().unwrap().iter().find(|c| c["name"] == "grattr").unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(grattr["image"], format!("{IMAGE}:{version}"), "the image this release publishes");

    // dist builds both static Linux binaries; the release's own job publishes them as the image,
    // the one job that may write packages.
    let dist = read("dist-workspace.toml");
    let targets = dist.lines().find(|l| l.starts_with("targets =")).expect("targets in dist-workspace.toml");
    for target in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        assert!(targets.contains(&format!("\"{target}\"")), "dist builds {target}");
    }
    let release = yaml(".github/workflows/release.yml");
    assert_eq!(release["permissions"], serde_json::json!({"contents": "write"}), "no package write for every job");
    for (name, job) in release["jobs"].as_object().unwrap() {
        let writes_packages = job["permissions"]["packages"] == "write";
        assert_eq!(writes_packages, name == "publish-image", "{name}: packages: write on the image's job only");
    }
    let job = &release["jobs"]["publish-image"];
    assert!(strings(&job["needs"]).contains(&"host"), "after the release's archives are built and hosted");
    assert_eq!(job["permissions"], serde_json::json!({"contents": "read", "packages": "write"}));
    let steps = job["steps"].as_array().unwrap();
    let step = |action: &str| {
        steps
            .iter()
            .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
            .unwrap_or_else(|| panic!("no {action}"))
    };
    for s in steps.iter().filter(|s| s["uses"].is_string()) {
        assert!(pinned(s["uses"].as_str().unwrap()), "{} is not pinned by commit", s["uses"]);
    }
    let archives = &step("actions/download-artifact@")["with"];
    assert_eq!(archives["pattern"], "artifacts-build-local-*-unknown-linux-musl", "this run's musl archives");
    assert_eq!(archives["path"], "prebuilt/", "where the Dockerfile's prebuilt stage reads them");
    step("docker/setup-buildx-action@");
    let login = &step("docker/login-action@")["with"];
    assert_eq!(login["registry"], "ghcr.io");
    assert_eq!(login["password"], "${{ secrets.GITHUB_TOKEN }}");
    let build = &step("docker/build-push-action@")["with"];
    assert_eq!(build["context"], ".", "the checkout with prebuilt/ in it, not a fresh Git context");
    let platforms: Vec<&str> = build["platforms"].as_str().unwrap().split(',').map(str::trim).collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(build["push"], true);
    assert!(
        build["build-args"].as_str().unwrap().contains("GRATTR_BINARY=prebuilt"),
        "the release's binaries, not a rebuild"
    );

    // The Dockerfile's prebuilt stage takes the binary of the platform being built.
    let dockerfile = read("Dockerfile");
    for needed in [
        "ARG GRATTR_BINARY=source",
        "FROM ${GRATTR_BINARY} AS binary",
        "ARG TARGETARCH",
        "amd64) target=x86_64-unknown-linux-musl",
        "arm64) target=aarch64-unknown-linux-musl",
        "USER 65532:65532",
        "EXPOSE 9464",
    ] {
        assert!(dockerfile.contains(needed), "the Dockerfile lacks `{needed}`");
    }
    let context = read(".dockerignore");
    assert!(!context.lines().any(|l| l.trim_end_matches('/') == "prebuilt"), "the archives reach the build");
}

/// grattr's repository and its image, as every file names them: placeholders until it is
/// published, then replaced everywhere at once (README: "OWNER/grattr stands for ..."), here too.
const REPOSITORY: &str = "OWNER/grattr";
const IMAGE: &str = "ghcr.io/owner/grattr";

/// What stands before a name of grattr's own repository (its GitHub home, the Action, the image).
const NAMING_THE_REPOSITORY: [&str; 5] = ["github.com/", "uses: ", "ghcr.io/", "repo: ", "repository = "];

#[test]
fn one_placeholder_names_the_repository_everywhere() {
    let mut files = vec![
        "README.md".to_owned(),
        "Cargo.toml".to_owned(),
        "action.yml".to_owned(),
        "Dockerfile".to_owned(),
        "dist-workspace.toml".to_owned(),
    ];
    for dir in ["action", "examples", ".github/workflows"] {
        let mut stack = vec![Path::new(ROOT).join(dir)];
        while let Some(at) = stack.pop() {
            for entry in std::fs::read_dir(&at).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(path.strip_prefix(ROOT).unwrap().to_string_lossy().into_owned());
                }
            }
        }
    }
    let mut seen = Vec::new();
    for file in &files {
        let text = read(file);
        for (number, line) in text.lines().enumerate() {
            for at in line.match_indices("/grattr").map(|(i, _)| i) {
                let before = &line[..at];
                let owner = before
                    .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
                    .next()
                    .unwrap();
                let after = &line[at + "/grattr".len()..];
                let whole = after.chars().next().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'));
                let context = &before[..before.len() - owner.len()];
                if owner.is_empty() || !whole || !NAMING_THE_REPOSITORY.iter().any(|n| context.ends_with(n)) {
                    continue;
                }
                let of = |name: &'static str| name.rsplit('/').nth(1).unwrap();
                let expected = if context.ends_with("ghcr.io/") { of(IMAGE) } else { of(REPOSITORY) };
                assert_eq!(
                    owner,
                    expected,
                    "{file}:{}: `{}` names grattr's repository otherwise",
                    number + 1,
                    line.trim()
                );
                seen.push(format!("{file}:{}", number + 1));
            }
        }
    }
    for file in ["README.md", "Cargo.toml", "action/install.sh", "examples/kubernetes/deployment.yaml"] {
        assert!(
            seen.iter().any(|s| s.starts_with(&format!("{file}:"))),
            "{file} names the repository nowhere: {seen:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// the systemd unit

/// The unit's directives, as `(active, key, value)`: `active` false for one commented out
/// (`#Key=value`, the unit's documented alternatives).
fn unit_directives(text: &str) -> Vec<(bool, String, String)> {
    text.lines()
        .filter_map(|line| {
            let (active, line) = match line.strip_prefix('#') {
                Some(rest) => (false, rest),
                None => (true, line),
            };
            let (key, value) = line.split_once('=')?;
            let key_like = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric());
            key_like.then(|| (active, key.to_owned(), value.to_owned()))
        })
        .collect()
}

#[test]
fn the_systemd_unit_shows_the_postgresql_record_as_the_alternative_to_its_state_directory() {
    let text = read("examples/systemd/grattr-watch.service");
    let directives = unit_directives(&text);
    let find = |active: bool, key: &str, starts: &str| {
        directives.iter().filter(|(a, k, v)| *a == active && k == key && v.starts_with(starts)).collect::<Vec<_>>()
    };
    // As shipped: the state directory, HEAD mode.
    assert_eq!(find(true, "Environment", "GRATTR_STATE_DIR=").len(), 1, "the default record");
    assert!(find(true, "Environment", "GRATTR_STATE=").is_empty(), "the alternative is commented out");
    let exec = find(true, "ExecStart", "");
    assert_eq!(exec.len(), 1);
    assert!(exec[0].2.contains("--source head"), "{exec:?}");
    // The alternative: the URL without its password, the password from a file of its own;
    // the same watch in HEAD mode (its snapshots stay in the state directory).
    let state = find(false, "Environment", "GRATTR_STATE=");
    assert_eq!(state.len(), 1, "{directives:?}");
    let url = state[0].2.strip_prefix("GRATTR_STATE=").unwrap();
    let rest = url.strip_prefix("postgres://").unwrap_or_else(|| panic!("a PostgreSQL URL: {url}"));
    assert!(!rest.split_once('@').expect("a user").0.contains(':'), "no password in the URL: {url}");
    assert!(url.contains("sslmode=verify-full"), "{url}");
    let file = find(false, "EnvironmentFile", "/");
    assert_eq!(file.len(), 1, "PGPASSWORD from a file: {directives:?}");
    assert!(text.contains("PGPASSWORD="), "the file's line is shown");
    assert!(find(false, "ExecStart", "").is_empty(), "one ExecStart for both: {directives:?}");
}
