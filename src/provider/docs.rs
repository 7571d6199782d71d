//! Terraform Registry docs rendered from the schema, the way tfplugindocs does it for Go
//! providers: descriptions come from the schema only, examples from `examples/`.
//! `make docs` writes them; `tests/docs.rs` fails when `docs/` is stale.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use tfplugin::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, IdentitySchema, NestedBlock, Schema,
};
use tfplugin::{Diagnostics, Provider};

use super::{VsphereIpamProvider, PROVIDER_NAME};

/// Every docs page: path relative to the repository root, and its content.
pub fn render_all(repo: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let provider = VsphereIpamProvider::default();
    let mut diags = Diagnostics::default();
    let mut pages = Vec::new();

    let schema = provider
        .schema(&mut diags)
        .ok_or_else(|| anyhow::anyhow!("no provider schema"))?;
    pages.push((PathBuf::from("docs/index.md"), index_page(repo, &schema)?));

    let data_sources: BTreeMap<_, _> = provider
        .get_data_sources(&mut diags)
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (name, ds) in data_sources {
        let schema = ds
            .schema(&mut diags)
            .ok_or_else(|| anyhow::anyhow!("no schema for {name}"))?;
        let page = type_page(repo, &name, "Data Source", &schema, None)?;
        pages.push((PathBuf::from(format!("docs/data-sources/{name}.md")), page));
    }
    let resources: BTreeMap<_, _> = provider
        .get_resources(&mut diags)
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (name, res) in resources {
        let schema = res
            .schema(&mut diags)
            .ok_or_else(|| anyhow::anyhow!("no schema for {name}"))?;
        let page = type_page(repo, &name, "Resource", &schema, res.identity_schema())?;
        pages.push((PathBuf::from(format!("docs/resources/{name}.md")), page));
    }
    let lists: BTreeMap<_, _> = provider
        .get_list_resources(&mut diags)
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (name, list) in lists {
        let schema = list
            .schema(&mut diags)
            .ok_or_else(|| anyhow::anyhow!("no list schema for {name}"))?;
        let page = list_page(repo, &name, &schema)?;
        pages.push((
            PathBuf::from(format!("docs/list-resources/{name}.md")),
            page,
        ));
    }
    Ok(pages)
}

fn read_example(repo: &Path, rel: &str) -> anyhow::Result<Option<String>> {
    let path = repo.join(rel);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim_end().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    }
}

fn first_sentence(text: &str) -> String {
    text.split(". ")
        .next()
        .unwrap_or(text)
        .trim_end_matches('.')
        .to_string()
        + "."
}

fn index_page(repo: &Path, schema: &Schema) -> anyhow::Result<String> {
    let desc = schema.block.description.content.clone();
    let mut out = format!(
        "---\npage_title: \"{PROVIDER_NAME} Provider\"\ndescription: |-\n  {}\n---\n\n# {PROVIDER_NAME} Provider\n\n{desc}\n\n",
        first_sentence(&desc)
    );
    if let Some(example) = read_example(repo, "examples/provider/provider.tf")? {
        write!(out, "## Example Usage\n\n```terraform\n{example}\n```\n\n")?;
    }
    out.push_str(&guides(repo)?);
    out.push_str("<!-- generated from the provider schema by `make docs`; do not edit -->\n");
    render_block(&mut out, &schema.block, None);
    Ok(out)
}

/// Links to the hand-written guides under docs/guides, by their `page_title`.
fn guides(repo: &Path) -> anyhow::Result<String> {
    let dir = repo.join("docs/guides");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    let mut out = String::from("## Guides\n\n");
    for path in files {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let title = text
            .lines()
            .find_map(|l| l.strip_prefix("page_title: "))
            .map(|t| t.trim_matches('"').to_string())
            .ok_or_else(|| anyhow::anyhow!("{} has no page_title", path.display()))?;
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        writeln!(out, "- [{title}](guides/{file})")?;
    }
    out.push('\n');
    Ok(out)
}

/// A list resource (`terraform query`, Terraform 1.14+): its filters and a `list` block.
fn list_page(repo: &Path, short: &str, schema: &Schema) -> anyhow::Result<String> {
    let full = format!("{PROVIDER_NAME}_{short}");
    let desc = schema.block.description.content.clone();
    let mut out = format!(
        "---\npage_title: \"{full} List Resource - {PROVIDER_NAME}\"\nsubcategory: \"\"\ndescription: |-\n  {}\n---\n\n# {full} (List Resource)\n\n{desc}\n\n\
         Terraform 1.14 and later run the `list` blocks of `.tfquery.hcl` files with `terraform \
         query`; `terraform query -generate-config-out=FILE` writes an `import` block (by \
         identity) and a `resource` block for each result. Older Terraform versions ignore \
         `.tfquery.hcl` files.\n\n",
        first_sentence(&desc)
    );
    if let Some(example) = read_example(
        repo,
        &format!("examples/list-resources/{full}/list.tfquery.hcl"),
    )? {
        write!(out, "## Example Usage\n\n```terraform\n{example}\n```\n\n")?;
    }
    out.push_str("<!-- generated from the provider schema by `make docs`; do not edit -->\n");
    render_block(&mut out, &schema.block, None);
    Ok(out)
}

fn type_page(
    repo: &Path,
    short: &str,
    kind: &str,
    schema: &Schema,
    identity: Option<IdentitySchema>,
) -> anyhow::Result<String> {
    let full = format!("{PROVIDER_NAME}_{short}");
    let desc = schema.block.description.content.clone();
    let mut out = format!(
        "---\npage_title: \"{full} {kind} - {PROVIDER_NAME}\"\nsubcategory: \"\"\ndescription: |-\n  {}\n---\n\n# {full} ({kind})\n\n{desc}\n\n",
        first_sentence(&desc)
    );
    let dir = if kind == "Resource" {
        "resources"
    } else {
        "data-sources"
    };
    let file = if kind == "Resource" {
        "resource.tf"
    } else {
        "data-source.tf"
    };
    if let Some(example) = read_example(repo, &format!("examples/{dir}/{full}/{file}"))? {
        write!(out, "## Example Usage\n\n```terraform\n{example}\n```\n\n")?;
    }
    out.push_str("<!-- generated from the provider schema by `make docs`; do not edit -->\n");
    render_block(&mut out, &schema.block, None);
    if let Some(import) = read_example(repo, &format!("examples/{dir}/{full}/import.sh"))? {
        write!(out, "\n## Import\n\nImport is supported using the following syntax:\n\n```shell\n{import}\n```\n")?;
    }
    if let Some(identity) = identity {
        render_identity(&mut out, &full, &identity);
    }
    Ok(out)
}

/// The identity Terraform 1.12+ stores beside the state, and an `import` block naming it.
fn render_identity(out: &mut String, full: &str, identity: &IdentitySchema) {
    let _ = write!(
        out,
        "\n## Identity\n\nTerraform 1.12 and later store this identity with the resource, and an \
         `import` block can name the resource by it instead of an id:\n\n```terraform\nimport {{\n  \
         to = {full}.example\n  identity = {{\n"
    );
    let width = identity
        .attributes
        .iter()
        .map(|a| a.name.len())
        .max()
        .unwrap_or(0);
    for a in &identity.attributes {
        let _ = writeln!(out, "    {:width$} = \"...\"", a.name);
    }
    out.push_str("  }\n}\n```\n\n");
    for a in &identity.attributes {
        let _ = writeln!(
            out,
            "- `{}` ({}) {}",
            a.name,
            type_name(&a.attr_type),
            a.description
        );
    }
}

fn render_block(out: &mut String, block: &Block, nested_name: Option<&str>) {
    match nested_name {
        None => out.push_str("## Schema\n"),
        Some(name) => {
            let _ = write!(
                out,
                "\n<a id=\"nestedblock--{name}\"></a>\n### Nested Schema for `{name}`\n"
            );
        }
    }
    let sorted: BTreeMap<_, _> = block.attributes.iter().collect();
    let blocks: BTreeMap<_, _> = block.blocks.iter().collect();
    let sections = [
        ("Required", AttributeConstraint::Required),
        ("Optional", AttributeConstraint::Optional),
        ("Read-Only", AttributeConstraint::Computed),
    ];
    for (title, constraint) in sections {
        let mut lines: Vec<String> = sorted
            .iter()
            .filter(|(_, a)| section_of(a) == constraint)
            .map(|(name, a)| attribute_line(name, a))
            .collect();
        if constraint == AttributeConstraint::Optional {
            lines.extend(blocks.iter().map(|(name, b)| block_line(name, b)));
            lines.sort();
        }
        if !lines.is_empty() {
            let _ = write!(out, "\n### {title}\n\n{}\n", lines.join("\n"));
        }
    }
    for (name, nested) in blocks {
        render_block(out, nested_block(nested), Some(name));
    }
}

/// Optional+computed attributes are inputs: the docs list them as Optional.
fn section_of(a: &Attribute) -> AttributeConstraint {
    match a.constraint {
        AttributeConstraint::OptionalComputed => AttributeConstraint::Optional,
        c => c,
    }
}

fn attribute_line(name: &str, a: &Attribute) -> String {
    let sensitive = if a.sensitive { ", Sensitive" } else { "" };
    let write_only = if a.write_only { ", Write-only" } else { "" };
    format!(
        "- `{name}` ({}{sensitive}{write_only}) {}",
        type_name(&a.attr_type),
        a.description.content
    )
}

fn nested_block(b: &NestedBlock) -> &Block {
    match b {
        NestedBlock::Single(b)
        | NestedBlock::List(b)
        | NestedBlock::Set(b)
        | NestedBlock::Map(b)
        | NestedBlock::Group(b)
        | NestedBlock::Optional(b) => b,
    }
}

fn block_line(name: &str, b: &NestedBlock) -> String {
    let kind = match b {
        NestedBlock::List(_) => "Block List",
        NestedBlock::Set(_) => "Block Set",
        NestedBlock::Map(_) => "Block Map",
        _ => "Block",
    };
    format!(
        "- `{name}` ({kind}) {} (see [below for nested schema](#nestedblock--{name}))",
        nested_block(b).description.content
    )
}

fn type_name(t: &AttributeType) -> String {
    match t {
        AttributeType::String => "String".into(),
        AttributeType::Number => "Number".into(),
        AttributeType::Bool => "Boolean".into(),
        AttributeType::List(inner) => format!("List of {}", type_name(inner)),
        AttributeType::Set(inner) => format!("Set of {}", type_name(inner)),
        AttributeType::Map(inner) => format!("Map of {}", type_name(inner)),
        AttributeType::Any => "Dynamic".into(),
        _ => "Object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfplugin::schema::Replace;

    /// Walks `block`, calling `check` with each attribute's path.
    fn each_attribute(block: &Block, path: &str, check: &mut impl FnMut(&str, &Attribute)) {
        for (name, a) in &block.attributes {
            check(&format!("{path}.{name}"), a);
        }
        for (name, b) in &block.blocks {
            each_attribute(nested_block(b), &format!("{path}.{name}"), check);
        }
    }

    /// What replaces a resource is declared once, on the attribute (`replaces`); its
    /// description, which the docs show, must say so, and must not claim it otherwise.
    #[test]
    fn descriptions_say_what_the_schema_replaces() {
        let provider = VsphereIpamProvider::default();
        let mut diags = Diagnostics::default();
        let mut wrong = Vec::new();
        for (name, res) in provider.get_resources(&mut diags).unwrap_or_default() {
            let schema = res.schema(&mut diags).expect("schema");
            each_attribute(&schema.block, &name, &mut |path, a| {
                let says = a.description.content.contains("Changing it replaces");
                let does = a.requires_replace != Replace::Never;
                if says != does {
                    wrong.push(format!(
                        "{path}: description says {says}, schema says {does}"
                    ));
                }
            });
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
