//! The provider itself: its configuration block and the types it serves.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::Tree;
use crate::data_source::DynamicDataSource;
use crate::diagnostics::Diagnostics;
use crate::list::DynamicListResource;
use crate::resource::{decode, DynamicResource};
use crate::schema::Schema;

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    type Config<'a>: Serialize + DeserializeOwned + Send;
    type MetaState<'a>: Serialize + DeserializeOwned + Send;

    fn schema(&self, diags: &mut Diagnostics) -> Option<Schema>;

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::Config<'a>) -> Option<()> {
        let _ = (diags, config);
        Some(())
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        terraform_version: String,
        config: Self::Config<'a>,
    ) -> Option<()> {
        let _ = (diags, terraform_version, config);
        Some(())
    }

    /// The `provider_meta` block's schema, if the provider has one.
    fn meta_schema(&self, diags: &mut Diagnostics) -> Option<Schema> {
        let _ = diags;
        None
    }

    /// Resource types by name without the provider prefix (`"vm"` for `vsphereipam_vm`).
    fn get_resources(
        &self,
        diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        let _ = diags;
        Some(HashMap::new())
    }

    fn get_data_sources(
        &self,
        diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        let _ = diags;
        Some(HashMap::new())
    }

    /// List resources (`terraform query`) by name without the provider prefix; each lists
    /// objects of the managed resource type of the same name, which must have an identity.
    fn get_list_resources(
        &self,
        diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicListResource>>> {
        let _ = diags;
        Some(HashMap::new())
    }
}

#[async_trait]
pub trait DynamicProvider: Send + Sync + 'static {
    fn schema(&self, diags: &mut Diagnostics) -> Option<Schema>;
    async fn validate(&self, diags: &mut Diagnostics, config: Tree) -> Option<()>;
    async fn configure(&self, diags: &mut Diagnostics, version: String, config: Tree)
        -> Option<()>;
    fn meta_schema(&self, diags: &mut Diagnostics) -> Option<Schema>;
    fn get_resources(
        &self,
        diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>>;
    fn get_data_sources(
        &self,
        diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>>;
    fn get_list_resources(
        &self,
        diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicListResource>>> {
        let _ = diags;
        Some(HashMap::new())
    }
}

#[async_trait]
impl<T: Provider> DynamicProvider for T {
    fn schema(&self, diags: &mut Diagnostics) -> Option<Schema> {
        Provider::schema(self, diags)
    }
    async fn validate(&self, diags: &mut Diagnostics, config: Tree) -> Option<()> {
        let config = decode(diags, &config, "the provider configuration")?;
        Provider::validate(self, diags, config).await
    }
    async fn configure(
        &self,
        diags: &mut Diagnostics,
        version: String,
        config: Tree,
    ) -> Option<()> {
        let config = decode(diags, &config, "the provider configuration")?;
        Provider::configure(self, diags, version, config).await
    }
    fn meta_schema(&self, diags: &mut Diagnostics) -> Option<Schema> {
        Provider::meta_schema(self, diags)
    }
    fn get_resources(
        &self,
        diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Provider::get_resources(self, diags)
    }
    fn get_data_sources(
        &self,
        diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Provider::get_data_sources(self, diags)
    }
    fn get_list_resources(
        &self,
        diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicListResource>>> {
        Provider::get_list_resources(self, diags)
    }
}
