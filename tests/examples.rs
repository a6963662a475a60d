//! The Kubernetes example (`examples/kubernetes/`) keeps the promises the README
//! makes for it: one writer per lockfile, the state on a volume outside the checkout,
//! the key from a Secret file, health probes on the watch port, Prometheus scraping,
//! and the `restricted` pod security profile. Every YAML document there is read.

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

#[test]
fn one_writer_with_its_state_on_a_volume_and_its_key_from_a_secret() {
    let documents = documents();
    let deployment = one(&documents, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1, "one writer per lockfile");
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate", "the old writer stops before the new one starts");
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

    let state = flag(&args, "--state-dir").expect("--state-dir");
    let (volume, mount) = volume_of(pod, grattr, state);
    assert_eq!(mount["mountPath"], state);
    let claim = volume["persistentVolumeClaim"]["claimName"].as_str().expect("the state on a PersistentVolumeClaim");
    let pvc = one(&documents, "PersistentVolumeClaim");
    assert_eq!(pvc["metadata"]["name"], claim);
    assert_eq!(strings(&pvc["spec"]["accessModes"]), ["ReadWriteOnce"]);
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
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "9464");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
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
