//! Data sources: the typed trait and its type-erased form.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::Tree;
use crate::diagnostics::Diagnostics;
use crate::resource::{decode, encode};
use crate::schema::Schema;

#[async_trait]
pub trait DataSource: Send + Sync {
    type State<'a>: Serialize + DeserializeOwned + Send;
    type ProviderMetaState<'a>: Serialize + DeserializeOwned + Default + Send;

    fn schema(&self, diags: &mut Diagnostics) -> Option<Schema>;

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        let _ = (diags, config);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>>;
}

#[async_trait]
pub trait DynamicDataSource: Send + Sync {
    fn schema(&self, diags: &mut Diagnostics) -> Option<Schema>;
    async fn validate(&self, diags: &mut Diagnostics, config: Tree) -> Option<()>;
    async fn read(&self, diags: &mut Diagnostics, config: Tree, meta: Tree) -> Option<Vec<u8>>;
}

#[async_trait]
impl<T: DataSource> DynamicDataSource for T {
    fn schema(&self, diags: &mut Diagnostics) -> Option<Schema> {
        DataSource::schema(self, diags)
    }
    async fn validate(&self, diags: &mut Diagnostics, config: Tree) -> Option<()> {
        let config = decode(diags, &config, "the configuration")?;
        DataSource::validate(self, diags, config).await
    }
    async fn read(&self, diags: &mut Diagnostics, config: Tree, meta: Tree) -> Option<Vec<u8>> {
        let config = decode(diags, &config, "the configuration")?;
        let meta = if matches!(meta, Tree::Nil) {
            Default::default()
        } else {
            decode(diags, &meta, "provider_meta")?
        };
        let state = DataSource::read(self, diags, config, meta).await?;
        encode(diags, &state)
    }
}

impl<T: DataSource + 'static> From<T> for Box<dyn DynamicDataSource> {
    fn from(value: T) -> Self {
        Box::new(value)
    }
}
