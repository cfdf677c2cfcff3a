//! The batch pipeline as data: a TOML file of parameters and steps, each step one `vane`
//! subcommand. [`Pipeline::run`] executes it locally (each step a child `vane` process);
//! [`Pipeline::to_argo`] renders it as an Argo Workflow (the engine under Kubeflow Pipelines),
//! each step the same container image running the same subcommand.
//!
//! ```toml
//! name = "credit-risk"
//! [params]
//! registry = "target/demo/registry"
//! [[steps]]
//! name = "verdict"
//! run = ["loadtest", "--compare", "champion,canary", "..."]
//! outcomes = { pass = 0, fail = 1 }     # any other exit code stops the pipeline
//! [[steps]]
//! name = "promote"
//! when = "verdict == pass"
//! run = ["registry", "--registry", "${registry}", "promote", "credit-risk"]
//! ```
//!
//! `${name}` in a step's arguments is a parameter. A step without `outcomes` must exit 0; one
//! with `outcomes` may end in any of them, and later steps branch on it with `when`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

/// A parsed and checked pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Parameters and their defaults (strings; `--set name=value` overrides).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    pub steps: Vec<Step>,
}

/// One step: a `vane` subcommand with its arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    /// The `vane` arguments, `${param}` substituted.
    pub run: Vec<String>,
    /// Named exit codes; without them only 0 succeeds.
    #[serde(default)]
    pub outcomes: BTreeMap<String, i32>,
    /// `"<step> == <outcome>"`: run only when that earlier step ended so.
    #[serde(default)]
    pub when: Option<String>,
}

/// A parsed `when`: the step it looks at and the outcome it needs.
#[derive(Debug, Clone, PartialEq)]
struct When {
    step: String,
    outcome: String,
}

impl Step {
    fn when(&self) -> Result<Option<When>> {
        let Some(w) = &self.when else {
            return Ok(None);
        };
        let Some((step, outcome)) = w.split_once("==") else {
            bail!(
                "step {:?}: when = {w:?} must read \"<step> == <outcome>\"",
                self.name
            );
        };
        Ok(Some(When {
            step: step.trim().to_string(),
            outcome: outcome.trim().to_string(),
        }))
    }
}

/// How a local run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// Each executed step with its outcome (`ok` for steps without outcomes), in order;
    /// skipped steps are absent.
    pub steps: Vec<(String, String)>,
}

impl Pipeline {
    /// Reads and checks a pipeline file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let p: Pipeline = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        p.check().with_context(|| format!("{}", path.display()))?;
        Ok(p)
    }

    /// Names unique and Argo-safe, `when` pointing at an earlier step's declared outcome,
    /// every `${param}` declared.
    fn check(&self) -> Result<()> {
        if self.steps.is_empty() {
            bail!("the pipeline has no steps");
        }
        let dns = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        if !dns(&self.name) {
            bail!(
                "pipeline name {:?}: use lowercase letters, digits and '-' (it names the workflow)",
                self.name
            );
        }
        let mut seen: BTreeMap<&str, &Step> = BTreeMap::new();
        for step in &self.steps {
            if !dns(&step.name) || step.name == "pipeline" || step.name == "stop" {
                bail!(
                    "step name {:?}: use lowercase letters, digits and '-' (not \"pipeline\" or \"stop\")",
                    step.name
                );
            }
            if seen.contains_key(step.name.as_str()) {
                bail!("step {:?} is defined twice", step.name);
            }
            if step.run.is_empty() {
                bail!("step {:?}: `run` is empty", step.name);
            }
            for (outcome, code) in &step.outcomes {
                if !dns(outcome) || *code < 0 {
                    bail!(
                        "step {:?}: outcome {outcome:?} = {code}: names are lowercase words, codes are exit codes",
                        step.name
                    );
                }
            }
            if let Some(w) = step.when()? {
                let Some(earlier) = seen.get(w.step.as_str()) else {
                    bail!(
                        "step {:?}: when refers to {:?}, which is not an earlier step",
                        step.name,
                        w.step
                    );
                };
                if !earlier.outcomes.contains_key(&w.outcome) {
                    bail!(
                        "step {:?}: when needs outcome {:?} of step {:?}, which declares {}",
                        step.name,
                        w.outcome,
                        w.step,
                        describe_outcomes(&earlier.outcomes)
                    );
                }
            }
            for arg in &step.run {
                for p in placeholders(arg)? {
                    if !self.params.contains_key(p) {
                        bail!(
                            "step {:?}: ${{{p}}} is not a parameter (declared: {})",
                            step.name,
                            self.params.keys().cloned().collect::<Vec<_>>().join(", ")
                        );
                    }
                }
            }
            seen.insert(&step.name, step);
        }
        Ok(())
    }

    /// Applies `name=value` overrides; an unknown name is an error.
    pub fn set(&mut self, overrides: &[String]) -> Result<()> {
        for o in overrides {
            let Some((k, v)) = o.split_once('=') else {
                bail!("--set {o:?}: expected name=value");
            };
            match self.params.get_mut(k) {
                Some(slot) => *slot = v.to_string(),
                None => bail!(
                    "--set {k}: the pipeline has no such parameter (declared: {})",
                    self.params.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            }
        }
        Ok(())
    }

    /// Keeps only the named steps (in file order); a `when` on a dropped step is an error.
    pub fn select(&mut self, only: &[String]) -> Result<()> {
        if only.is_empty() {
            return Ok(());
        }
        for name in only {
            if !self.steps.iter().any(|s| &s.name == name) {
                bail!(
                    "--steps: no step {name:?} (steps: {})",
                    self.steps
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        self.steps.retain(|s| only.contains(&s.name));
        for s in &self.steps {
            if let Some(w) = s.when()?
                && !only.contains(&w.step)
            {
                bail!(
                    "--steps: step {:?} depends on step {:?}, which is not selected",
                    s.name,
                    w.step
                );
            }
        }
        Ok(())
    }

    /// Runs the steps in order, each as `exe <args>`; stops at the first step that fails.
    pub fn run(&self, exe: &Path) -> Result<RunReport> {
        let mut outcomes: BTreeMap<String, String> = BTreeMap::new();
        let mut report = RunReport { steps: Vec::new() };
        for step in &self.steps {
            if let Some(w) = step.when()?
                && outcomes.get(&w.step) != Some(&w.outcome)
            {
                eprintln!(
                    "== {}: skipped ({} was {})",
                    step.name,
                    w.step,
                    outcomes.get(&w.step).map_or("not run", String::as_str)
                );
                continue;
            }
            let args = step
                .run
                .iter()
                .map(|a| substitute(a, &|p| self.params[p].clone()))
                .collect::<Result<Vec<_>>>()?;
            eprintln!("== {}: vane {}", step.name, shell_words(&args));
            let started = Instant::now();
            let status = Command::new(exe)
                .args(&args)
                .status()
                .with_context(|| format!("step {:?}: starting {}", step.name, exe.display()))?;
            let secs = started.elapsed().as_secs_f64();
            let code = status.code();
            let outcome = if step.outcomes.is_empty() {
                (code == Some(0)).then(|| "ok".to_string())
            } else {
                step.outcomes
                    .iter()
                    .find(|(_, c)| Some(**c) == code)
                    .map(|(o, _)| o.clone())
            };
            let Some(outcome) = outcome else {
                let how = code.map_or_else(|| status.to_string(), |c| format!("exit code {c}"));
                let expected = if step.outcomes.is_empty() {
                    "0".to_string()
                } else {
                    describe_outcomes(&step.outcomes)
                };
                bail!(
                    "pipeline {:?} stopped: step {:?} ended with {how} after {secs:.1} s (expected {expected})",
                    self.name,
                    step.name
                );
            };
            eprintln!("== {}: {outcome} ({secs:.1} s)", step.name);
            outcomes.insert(step.name.clone(), outcome.clone());
            report.steps.push((step.name.clone(), outcome));
        }
        Ok(report)
    }

    /// The pipeline as an Argo Workflow: one container template per step (`image`, command
    /// `vane`), run in sequence; parameters become workflow parameters. A step with outcomes
    /// continues on failure; a guard step then stops the workflow on any exit code that is not
    /// an outcome, and `when` becomes a condition on the step's exit code. `volume_claim` mounts
    /// a PersistentVolumeClaim at `mount` in every step (the offline store and local files).
    pub fn to_argo(&self, image: &str, volume_claim: Option<&str>, mount: &str) -> Result<Value> {
        let param = |p: &str| format!("{{{{workflow.parameters.{p}}}}}");
        let mut templates = Vec::new();
        let mut groups: Vec<Value> = Vec::new();
        let mounts = volume_claim.map(|_| json!([{ "name": "data", "mountPath": mount }]));
        let container = |args: Vec<String>| {
            let mut c = json!({
                "image": image,
                "command": ["vane"],
                "args": args,
                "env": [{
                    "name": "VANE_ADMIN_TOKEN",
                    "valueFrom": { "secretKeyRef": {
                        "name": "vane-admin", "key": "token", "optional": true
                    }}
                }],
            });
            if let Some(m) = &mounts {
                c["volumeMounts"] = m.clone();
            }
            c
        };
        let by_name: BTreeMap<&str, &Step> =
            self.steps.iter().map(|s| (s.name.as_str(), s)).collect();
        for step in &self.steps {
            let args = step
                .run
                .iter()
                .map(|a| substitute(a, &|p| param(p)))
                .collect::<Result<Vec<_>>>()?;
            templates.push(json!({ "name": step.name, "container": container(args) }));
            let mut call = json!({ "name": step.name, "template": step.name });
            if !step.outcomes.is_empty() {
                call["continueOn"] = json!({ "failed": true });
            }
            if let Some(w) = step.when()? {
                let code = by_name[w.step.as_str()].outcomes[&w.outcome];
                call["when"] = json!(format!("{{{{steps.{}.exitCode}}}} == {code}", w.step));
            }
            groups.push(json!([call]));
            if !step.outcomes.is_empty() {
                let exit = format!("{{{{steps.{}.exitCode}}}}", step.name);
                let guard = step
                    .outcomes
                    .values()
                    .map(|c| format!("{exit} != {c}"))
                    .collect::<Vec<_>>()
                    .join(" && ");
                groups.push(json!([{
                    "name": format!("{}-outcome", step.name),
                    "template": "stop",
                    "when": guard,
                    "arguments": { "parameters": [{
                        "name": "message",
                        "value": format!(
                            "step {} ended with exit code {exit}, not one of its outcomes ({})",
                            step.name,
                            describe_outcomes(&step.outcomes)
                        ),
                    }]},
                }]));
            }
        }
        let mut all = vec![json!({ "name": "pipeline", "steps": groups })];
        all.extend(templates);
        all.push(json!({
            "name": "stop",
            "inputs": { "parameters": [{ "name": "message" }] },
            "container": container(vec![
                "pipeline".into(), "fail".into(), "{{inputs.parameters.message}}".into()
            ]),
        }));
        let mut spec = json!({
            "entrypoint": "pipeline",
            "arguments": { "parameters": self.params.iter()
                .map(|(k, v)| json!({ "name": k, "value": v }))
                .collect::<Vec<_>>() },
            "templates": all,
        });
        if let Some(claim) = volume_claim {
            spec["volumes"] =
                json!([{ "name": "data", "persistentVolumeClaim": { "claimName": claim } }]);
        }
        Ok(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {
                "generateName": format!("{}-", self.name),
                "labels": { "app.kubernetes.io/part-of": "vane" },
                "annotations": { "vane.dev/description": self.description },
            },
            "spec": spec,
        }))
    }
}

fn describe_outcomes(outcomes: &BTreeMap<String, i32>) -> String {
    if outcomes.is_empty() {
        return "no outcomes".into();
    }
    outcomes
        .iter()
        .map(|(o, c)| format!("{o} = exit {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `${name}` placeholders of one argument.
fn placeholders(arg: &str) -> Result<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(i) = rest.find("${") {
        let tail = &rest[i + 2..];
        let Some(end) = tail.find('}') else {
            bail!("argument {arg:?}: unclosed ${{");
        };
        out.push(&tail[..end]);
        rest = &tail[end + 1..];
    }
    Ok(out)
}

fn substitute(arg: &str, value: &dyn Fn(&str) -> String) -> Result<String> {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 2..];
        let Some(end) = tail.find('}') else {
            bail!("argument {arg:?}: unclosed ${{");
        };
        out.push_str(&value(&tail[..end]));
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Arguments as a shell would need them typed (for the log line).
pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline> {
        let p: Pipeline = toml::from_str(text)?;
        p.check()?;
        Ok(p)
    }

    const GOOD: &str = r#"
        name = "p"
        [params]
        reg = "r"
        [[steps]]
        name = "verdict"
        run = ["loadtest", "--x", "${reg}/a"]
        outcomes = { pass = 0, fail = 1 }
        [[steps]]
        name = "promote"
        when = "verdict == pass"
        run = ["registry", "--registry", "${reg}", "promote", "m"]
    "#;

    #[test]
    fn errors_name_the_step_and_the_parameter() {
        let e = |t: &str| format!("{:#}", parse(t).unwrap_err());
        assert!(
            e(&GOOD.replace("${reg}/a", "${nope}"))
                .contains(r#"step "verdict": ${nope} is not a parameter (declared: reg)"#)
        );
        assert!(
            e(&GOOD.replace("verdict == pass", "verdict == maybe"))
                .contains(r#"when needs outcome "maybe" of step "verdict""#)
        );
        assert!(
            e(&GOOD.replace("verdict == pass", "later == pass"))
                .contains(r#"which is not an earlier step"#)
        );
        assert!(e(&GOOD.replace("\"promote\"\n", "\"verdict\"\n")).contains("defined twice"));
        assert!(e(&GOOD.replace("name = \"p\"", "name = \"P q\"")).contains("pipeline name"));
        assert!(e(&GOOD.replace("when = ", "wen = ")).contains("unknown field `wen`"));
    }

    #[test]
    fn set_and_select() {
        let mut p = parse(GOOD).unwrap();
        p.set(&["reg=/x".into()]).unwrap();
        assert_eq!(p.params["reg"], "/x");
        assert!(format!("{:#}", p.set(&["nope=1".into()]).unwrap_err()).contains("no such"));
        let mut q = p.clone();
        let e = q.select(&["promote".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("depends on step \"verdict\""));
        p.select(&["verdict".into()]).unwrap();
        assert_eq!(p.steps.len(), 1);
    }

    #[test]
    fn substitution() {
        let v = |p: &str| format!("<{p}>");
        assert_eq!(substitute("a${x}b${y}", &v).unwrap(), "a<x>b<y>");
        assert_eq!(substitute("plain", &v).unwrap(), "plain");
        assert!(substitute("a${x", &v).is_err());
    }

    #[test]
    fn argo_branches_on_exit_codes() {
        let p = parse(GOOD).unwrap();
        let w = p.to_argo("vane:1", Some("vane-data"), "/data").unwrap();
        assert_eq!(w["kind"], "Workflow");
        let steps = &w["spec"]["templates"][0]["steps"];
        assert_eq!(steps[0][0]["continueOn"]["failed"], true);
        assert_eq!(
            steps[1][0]["when"],
            "{{steps.verdict.exitCode}} != 1 && {{steps.verdict.exitCode}} != 0"
        );
        assert_eq!(steps[2][0]["when"], "{{steps.verdict.exitCode}} == 0");
        let verdict = &w["spec"]["templates"][1]["container"];
        assert_eq!(verdict["args"][2], "{{workflow.parameters.reg}}/a");
        assert_eq!(verdict["volumeMounts"][0]["mountPath"], "/data");
        assert_eq!(w["spec"]["arguments"]["parameters"][0]["name"], "reg");
    }
}
