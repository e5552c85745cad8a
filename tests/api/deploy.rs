//! The deployment files stay valid and agree with the configuration defaults.

use faceauth_gateway::config::Settings;
use serde::Deserialize;
use serde_yaml::Value;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn every_yaml_file_parses() {
    let mut seen = 0;
    for dir in ["deploy/k8s", "deploy"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                let rel = path
                    .strip_prefix(root())
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                for doc in docs(&rel) {
                    assert!(doc.is_mapping(), "{rel}");
                    seen += 1;
                }
            }
        }
    }
    assert!(seen >= 8, "{seen} documents");
}

#[test]
fn probes_and_ports_match_the_configuration() {
    let defaults = Settings::load_from(None, std::iter::empty()).unwrap();
    let default_http = defaults.server.bind.port() as u64;
    let default_metrics = port_of(&defaults.server.metrics_bind);

    // The ConfigMap's settings file is a valid gateway configuration.
    let cm = &docs("deploy/k8s/configmap.yaml")[0];
    let toml = cm["data"]["gateway.toml"].as_str().unwrap();
    let file = std::env::temp_dir().join(format!("cm-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, toml).unwrap();
    let settings = Settings::load_from(Some(&file), std::iter::empty()).unwrap();
    std::fs::remove_file(&file).unwrap();
    let http = settings.server.bind.port() as u64;
    let metrics = port_of(&settings.server.metrics_bind);
    assert_eq!((http, metrics), (default_http, default_metrics));

    let deployment = &docs("deploy/k8s/deployment.yaml")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let port = |name: &str| {
        c["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["containerPort"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(port("http"), http);
    assert_eq!(port("metrics"), metrics);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(
        deployment["metadata"]["annotations"].is_null(),
        "scrape annotations live on the pod template"
    );
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap()
            > settings.server.drain_secs + settings.server.shutdown_timeout_secs,
        "Kubernetes waits longer than drain + shutdown timeout"
    );
    let template_annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        template_annotations["prometheus.io/port"],
        metrics.to_string().as_str()
    );

    // The Secret names only keys the gateway knows.
    let secret = &docs("deploy/k8s/secret.example.yaml")[0];
    let env: Vec<(String, String)> = secret["stringData"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
        .collect();
    Settings::load_from(None, env.clone()).expect("the example Secret's keys are valid settings");
    // The second Secret is mounted as files; the Deployment points FACEAUTH__…__FILE at each,
    // and those variables load (with the example values in files).
    let files = &docs("deploy/k8s/secret.example.yaml")[1];
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "secrets")
        .expect("a secrets volume")["mountPath"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "secrets")
            .unwrap()["secret"]["secretName"],
        files["metadata"]["name"]
    );
    let dir = std::env::temp_dir().join(format!("fag-deploy-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut file_env = env.clone();
    let mut referenced = 0;
    for var in c["env"].as_sequence().unwrap() {
        let name = var["name"].as_str().unwrap();
        let Some(path) = var["value"].as_str().filter(|_| name.ends_with("__FILE")) else {
            continue;
        };
        let file_name = path
            .strip_prefix(&format!("{mount}/"))
            .unwrap_or_else(|| panic!("{name} points outside the secrets volume"));
        let value = files["stringData"][file_name]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no key {file_name} in the Secret"));
        let local = dir.join(file_name);
        std::fs::write(&local, value).unwrap();
        file_env.push((name.to_string(), local.display().to_string()));
        referenced += 1;
    }
    assert!(referenced >= 4, "{referenced} secret files");
    let loaded = Settings::load_from(None, file_env).expect("the secret files load");
    assert!(loaded.secret_sources["argos.api_key"].starts_with("file "));
    std::fs::remove_dir_all(dir).unwrap();

    let compose = &docs("deploy/docker-compose.yml")[0];
    let ports: Vec<&str> = compose["services"]["gateway"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(ports.iter().any(|p| p.ends_with(&format!(":{http}"))));
    assert!(ports.iter().any(|p| p.ends_with(&format!(":{metrics}"))));

    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    assert!(dockerfile.contains(&format!("EXPOSE {http} {metrics}")));
    assert!(dockerfile.contains("USER nonroot"));
    let unit =
        std::fs::read_to_string(root().join("deploy/systemd/faceauth-gateway.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/faceauth-gateway serve"));
}
