//! `meshctl`: apply, delete, list and explain policies on a running lab.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::authn::issuer::MintRequest;
use crate::config::parse_documents;
use crate::control::api::{
    ApplyRequest, ChangeResponse, ErrorBody, ResourceList, TokenResponse, WorkloadSummary,
};

/// Command-line interface of `meshctl`.
#[derive(Debug, Parser)]
#[command(
    name = "meshctl",
    version,
    about = "Apply and inspect Istio security policies on a meshlab lab"
)]
pub struct Cli {
    /// Control plane API address.
    #[arg(
        long,
        env = "MESHLAB_CONTROL_PLANE",
        default_value = "http://127.0.0.1:15012",
        global = true
    )]
    pub control_plane: String,
    /// Admin token for a networked control plane (`meshctl admin-token` mints one).
    #[arg(long, env = "MESHLAB_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Mesh root certificate (PEM) that an https:// control plane must chain to.
    #[arg(long, env = "MESHLAB_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane (CA, policy store, registry) over TLS for workload containers.
    ControlPlane(crate::control::server::ControlPlaneArgs),
    /// Print a bootstrap token for one namespace and service account.
    BootstrapToken(crate::control::token::BootstrapTokenArgs),
    /// Print the admin token that `--token` and the agents' exec endpoint accept.
    AdminToken(crate::control::token::AdminTokenArgs),
    /// Apply every document of each file atomically (a directory means its *.yaml files, `-`
    /// standard input).
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Delete the resources named in each file.
    Delete {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Check files locally without applying them.
    Validate {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// List stored resources, or workloads with `get workloads`.
    Get {
        /// `policies` (default) or `workloads`.
        #[arg(default_value = "policies")]
        what: String,
    },
    /// Show the peer authentication, client TLS and authorization in force for a workload.
    Describe {
        workload: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Delete every resource.
    Reset,
    /// Mint a JWT signed by the lab issuer (`meshlab@cluster.local`), or with Istio's
    /// sample key when --issuer is testing@secure.istio.io.
    Token {
        /// `sub` claim.
        #[arg(long)]
        sub: Option<String>,
        /// Extra claim as KEY=VALUE; VALUE is read as JSON when it parses, else as a
        /// string. Repeatable.
        #[arg(long = "claim", value_name = "KEY=VALUE")]
        claims: Vec<String>,
        /// `aud` claim; repeat for a list.
        #[arg(long = "aud")]
        audiences: Vec<String>,
        /// `iss` claim; the lab issuer when unset.
        #[arg(long)]
        issuer: Option<String>,
        /// Lifetime such as 1h or 30s; a negative value such as -5m mints an expired
        /// token.
        #[arg(long, allow_hyphen_values = true, default_value = "1h")]
        expires: String,
    },
}

/// Runs one command; returns the text to print on success.
pub async fn run(cli: Cli) -> anyhow::Result<String> {
    match cli.command {
        Command::ControlPlane(args) => {
            crate::control::server::run(args).await?;
            return Ok(String::new());
        }
        Command::BootstrapToken(args) => return args.run(),
        Command::AdminToken(args) => return args.run(),
        _ => {}
    }
    let api = ApiClient::new(
        &cli.control_plane,
        cli.token.as_deref(),
        cli.ca_cert.as_deref(),
    )?;
    match cli.command {
        Command::ControlPlane(_) | Command::BootstrapToken(_) | Command::AdminToken(_) => {
            unreachable!("local commands return above")
        }
        Command::Validate { files } => {
            let mut out = String::new();
            for (path, yaml) in read_files(&files)? {
                let docs = parse_documents(&yaml, &path.display().to_string())?;
                out.push_str(&format!(
                    "{}: {} valid document(s)\n",
                    path.display(),
                    docs.len()
                ));
            }
            Ok(out)
        }
        Command::Apply { files } => change(&api, "/v1/apply", &files, "applied").await,
        Command::Delete { files } => change(&api, "/v1/delete", &files, "deleted").await,
        Command::Get { what } => match what.as_str() {
            "policies" | "policy" | "resources" | "all" => {
                let list: ResourceList = api.get_json("/v1/resources").await?;
                Ok(format_resources(&list))
            }
            "workloads" | "workload" => {
                let list: Vec<WorkloadSummary> = api.get_json("/v1/workloads").await?;
                Ok(format_workloads(&list))
            }
            other => bail!("unknown resource type {other:?}: expected `policies` or `workloads`"),
        },
        Command::Describe {
            workload,
            namespace,
        } => {
            api.get_text(&format!("/v1/describe/{namespace}/{workload}"))
                .await
        }
        Command::Token {
            sub,
            claims,
            audiences,
            issuer,
            expires,
        } => {
            let request = token_request(sub, &claims, audiences, issuer, expires)?;
            let response: TokenResponse = api.post_json("/v1/token", &request).await?;
            Ok(format!("{}\n", response.token))
        }
        Command::Reset => {
            let response: ChangeResponse =
                api.post_json("/v1/reset", &serde_json::json!({})).await?;
            Ok(format!(
                "every resource deleted (version {})\n",
                response.version
            ))
        }
    }
}

fn token_request(
    sub: Option<String>,
    claims: &[String],
    audiences: Vec<String>,
    issuer: Option<String>,
    expires: String,
) -> anyhow::Result<MintRequest> {
    let mut map = serde_json::Map::new();
    for claim in claims {
        let Some((key, value)) = claim.split_once('=') else {
            bail!("invalid --claim {claim:?}: expected KEY=VALUE");
        };
        if key.is_empty() {
            bail!("invalid --claim {claim:?}: the claim name is empty");
        }
        // The issuer sets these from their own flags, and would overwrite a --claim.
        let flag = match key {
            "iss" => Some("--issuer"),
            "sub" => Some("--sub"),
            "aud" => Some("--aud"),
            "exp" => Some("--expires"),
            _ => None,
        };
        if let Some(flag) = flag {
            bail!("invalid --claim {claim:?}: set {key} with {flag}");
        }
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        map.insert(key.to_string(), value);
    }
    let aud = match audiences.len() {
        0 => None,
        1 => Some(serde_json::Value::String(audiences[0].clone())),
        _ => Some(serde_json::json!(audiences)),
    };
    Ok(MintRequest {
        sub,
        iss: issuer,
        aud,
        expires: Some(expires),
        claims: map,
        ..MintRequest::default()
    })
}

async fn change(
    api: &ApiClient,
    endpoint: &str,
    files: &[PathBuf],
    verb: &str,
) -> anyhow::Result<String> {
    let files = read_files(files)?;
    // Check every file before changing anything, so that a typo in the third file does not
    // leave the first two applied.
    for (path, yaml) in &files {
        if parse_documents(yaml, &path.display().to_string())?.is_empty() {
            bail!("{}: no resources in the file", path.display());
        }
    }
    let mut out = String::new();
    for (path, yaml) in files {
        let request = ApplyRequest {
            origin: path.display().to_string(),
            yaml,
        };
        let response: ChangeResponse = api.post_json(endpoint, &request).await?;
        for resource in response.resources {
            out.push_str(&format!("{resource} {verb}\n"));
        }
    }
    Ok(out)
}

fn read_files(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("reading standard input")?;
            files.push((PathBuf::from("<stdin>"), text));
        } else if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading directory {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_yaml(p))
                .collect();
            entries.sort();
            if entries.is_empty() {
                bail!(
                    "{}: no *.yaml or *.yml files in the directory",
                    path.display()
                );
            }
            for entry in entries {
                let text = std::fs::read_to_string(&entry)
                    .with_context(|| format!("reading {}", entry.display()))?;
                files.push((entry, text));
            }
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            files.push((path.clone(), text));
        }
    }
    Ok(files)
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn format_resources(list: &ResourceList) -> String {
    let mut rows = vec![["KIND", "NAMESPACE", "NAME", "API VERSION"]
        .map(String::from)
        .to_vec()];
    for r in &list.resources {
        rows.push(vec![
            r.kind.clone(),
            r.namespace.clone(),
            r.name.clone(),
            r.api_version.clone(),
        ]);
    }
    let mut out = format_table(&rows);
    out.push_str(&format!("(store version {})\n", list.version));
    out
}

fn format_workloads(list: &[WorkloadSummary]) -> String {
    let mut rows = vec![["NAME", "NAMESPACE", "ADDRESS", "IDENTITY"]
        .map(String::from)
        .to_vec()];
    for w in list {
        rows.push(vec![
            w.name.clone(),
            w.namespace.clone(),
            w.address.clone(),
            w.identity
                .clone()
                .unwrap_or_else(|| "- (no sidecar)".to_string()),
        ]);
    }
    format_table(&rows)
}

/// Left-aligned columns separated by three spaces, as kubectl prints them.
pub fn format_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// A minimal HTTP/1.1 client for the control plane API.
struct ApiClient {
    authority: String,
    /// Client of a networked control plane, for https:// addresses.
    tls: Option<crate::control::remote::ControlPlaneClient>,
}

impl ApiClient {
    fn new(url: &str, token: Option<&str>, ca_cert: Option<&Path>) -> anyhow::Result<Self> {
        let uri: http::Uri = url.parse().with_context(|| {
            format!("invalid control plane address {url:?}: expected http://host:port")
        })?;
        let authority = uri
            .authority()
            .with_context(|| format!("invalid control plane address {url:?}: missing host"))?
            .to_string();
        match uri.scheme_str() {
            Some("http") => Ok(Self {
                authority,
                tls: None,
            }),
            Some("https") => {
                let from_file = match (token, std::env::var_os("MESHLAB_TOKEN_FILE")) {
                    (None, Some(path)) => Some(
                        std::fs::read_to_string(&path)
                            .with_context(|| format!("reading {}", Path::new(&path).display()))?,
                    ),
                    _ => None,
                };
                let token = token.or(from_file.as_deref()).context(
                    "an https:// control plane needs the admin token: pass --token or set MESHLAB_TOKEN or MESHLAB_TOKEN_FILE",
                )?;
                let ca_cert = ca_cert.context(
                    "an https:// control plane needs the mesh root: pass --ca-cert or set MESHLAB_CA_CERT",
                )?;
                let root = std::fs::read_to_string(ca_cert)
                    .with_context(|| format!("reading {}", ca_cert.display()))?;
                let client = crate::control::remote::ControlPlaneClient::new(url, token, &root)?;
                Ok(Self {
                    authority,
                    tls: Some(client),
                })
            }
            _ => bail!("invalid control plane address {url:?}: expected http:// or https://"),
        }
    }

    async fn request(
        &self,
        method: http::Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(http::StatusCode, Bytes)> {
        if let Some(client) = &self.tls {
            let (status, body) = client.request(method, path, body).await?;
            return Ok((status, body));
        }
        let stream = tokio::net::TcpStream::connect(&self.authority).await.with_context(|| {
            format!(
                "could not reach the control plane at {}: is `bookinfo up` running? (set --control-plane or MESHLAB_CONTROL_PLANE)",
                self.authority
            )
        })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    async fn checked(
        &self,
        method: http::Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<Bytes> {
        let (status, body) = self.request(method, path, body).await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            bail!("{message}");
        }
        Ok(body)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let body = self.checked(http::Method::GET, path, Bytes::new()).await?;
        serde_json::from_slice(&body).context("invalid response from the control plane")
    }

    async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let body = self.checked(http::Method::GET, path, Bytes::new()).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        value: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        let body = Bytes::from(serde_json::to_vec(value)?);
        let body = self.checked(http::Method::POST, path, body).await?;
        serde_json::from_slice(&body).context("invalid response from the control plane")
    }
}
