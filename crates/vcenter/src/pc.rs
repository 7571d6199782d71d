//! PropertyCollector plumbing shared by the inventory load and the VM operations: morefs and
//! object specs, traversal specs, one page-retrieval function, and reading one object's row.

use vim_rs::core::client::Error as VimError;
use vim_rs::core::pc_helpers::Queriable;
use vim_rs::mo::PropertyCollector;
use vim_rs::types::enums::MoTypesEnum;
use vim_rs::types::struct_enum::StructType;
use vim_rs::types::structs::{
    ManagedObjectReference, ObjectContent, ObjectSpec, PropertyFilterSpec, PropertySpec,
    RetrieveOptions, SelectionSpec, TraversalSpec,
};
use vim_rs::types::traits::SelectionSpecTrait;

use crate::client::VsphereClient;
use crate::fault::{retry_lost, Fault};

pub(crate) fn moref(kind: MoTypesEnum, value: &str) -> ManagedObjectReference {
    ManagedObjectReference {
        r#type: kind,
        value: value.to_string(),
    }
}

pub(crate) fn object_spec(obj: ManagedObjectReference) -> ObjectSpec {
    ObjectSpec {
        obj,
        skip: Some(false),
        select_set: None,
    }
}

/// A traversal named `name` from objects of type `kind` along `path`, continuing with the
/// selection named `next`.
pub(crate) fn traversal(
    name: &str,
    kind: &str,
    path: &str,
    next: Option<&str>,
) -> Box<dyn SelectionSpecTrait> {
    Box::new(TraversalSpec {
        selection_spec_: SelectionSpec {
            name: Some(name.to_string()),
        },
        r#type: kind.to_string(),
        path: path.to_string(),
        skip: Some(false),
        select_set: next.map(|n| {
            vec![Box::new(SelectionSpec {
                name: Some(n.to_string()),
            }) as Box<dyn SelectionSpecTrait>]
        }),
    })
}

/// What [`retrieve_pages`] read.
pub(crate) struct Pages {
    pub objects: Vec<ObjectContent>,
    /// Calls made: RetrievePropertiesEx and each ContinueRetrievePropertiesEx.
    pub pages: u32,
}

/// One RetrievePropertiesEx and its ContinueRetrievePropertiesEx pages, at most `page_size`
/// objects a page (`None`: the server's choice). `on_page` hears the pages and objects read so
/// far after each page. A failure says which page (1 is the first call) it was.
pub(crate) async fn retrieve_pages(
    client: &VsphereClient,
    spec: &PropertyFilterSpec,
    page_size: Option<i32>,
    on_page: &(dyn Fn(u32, usize) + Send + Sync),
) -> Result<Pages, (u32, VimError)> {
    let pc = PropertyCollector::new(
        client.vim(),
        &client.service_content().property_collector.value,
    );
    let options = RetrieveOptions {
        max_objects: page_size,
    };
    let first = pc
        .retrieve_properties_ex(std::slice::from_ref(spec), &options)
        .await
        .map_err(|e| (1, e))?;
    let mut read = Pages {
        objects: Vec::new(),
        pages: 1,
    };
    let Some(mut page) = first else {
        return Ok(read);
    };
    loop {
        read.objects.append(&mut page.objects);
        on_page(read.pages, read.objects.len());
        let Some(token) = page.token.take() else {
            break;
        };
        read.pages += 1;
        page = pc
            .continue_retrieve_properties_ex(&token)
            .await
            .map_err(|e| (read.pages, e))?;
    }
    Ok(read)
}

/// The objects of `object_set` with the properties of `prop_set`, every page. An object that
/// does not exist fails the whole call with ManagedObjectNotFound (vCenter's default; asking for
/// missing objects in the results instead makes the simulator answer an empty `returnval` that
/// vim_rs cannot decode). A read changes nothing, so a lost answer is asked again, on a new
/// connection, until the client's find-out budget is spent.
pub(crate) async fn retrieve(
    client: &VsphereClient,
    prop_set: Vec<PropertySpec>,
    object_set: Vec<ObjectSpec>,
) -> Result<Vec<ObjectContent>, Fault> {
    let spec = PropertyFilterSpec {
        prop_set,
        object_set,
        report_missing_objects_in_results: None,
    };
    let spec = &spec;
    retry_lost(client, "reading from vCenter", move || async move {
        retrieve_pages(client, spec, None, &|_, _| {})
            .await
            .map(|read| read.objects)
            .map_err(|(_, e)| Fault::from_vim(&e))
    })
    .await
}

/// Decodes a row whose properties are all optional: content without properties is a row of
/// `None`s.
pub(crate) fn decode<T>(mut content: ObjectContent) -> Result<T, Fault>
where
    T: TryFrom<ObjectContent, Error = vim_rs::core::error::Error>,
{
    if content.prop_set.is_none() {
        content.prop_set = Some(Vec::new());
    }
    let what = format!("{} {}", content.obj.r#type.as_str(), content.obj.value);
    T::try_from(content).map_err(|e| Fault::text(format!("unexpected answer for {what}: {e}")))
}

/// Reads the properties of one object; `None` when it does not exist.
pub(crate) async fn read_one<T>(
    client: &VsphereClient,
    obj: ManagedObjectReference,
) -> Result<Option<T>, Fault>
where
    T: Queriable + TryFrom<ObjectContent, Error = vim_rs::core::error::Error>,
{
    let wanted = obj.value.clone();
    let contents = match retrieve(client, vec![T::prop_spec()], vec![object_spec(obj)]).await {
        Ok(contents) => contents,
        Err(fault) if fault.kind == Some(StructType::ManagedObjectNotFound) => return Ok(None),
        Err(fault) => return Err(fault),
    };
    match contents.into_iter().find(|c| c.obj.value == wanted) {
        Some(content) => decode(content).map(Some),
        None => Ok(None),
    }
}
