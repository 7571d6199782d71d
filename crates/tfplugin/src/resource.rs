//! Managed resources: the typed trait a resource implements, and its type-erased form the
//! server calls with decoded value trees.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{self, Tree};
use crate::diagnostics::{AttributePath, Diagnostics};
use crate::identity::Identity;
use crate::moves::MoveSource;
use crate::schema::{IdentitySchema, Schema};

/// A managed resource with its state as a plain Rust struct of [`crate::Value`]s.
///
/// Returning `None` means the call failed: it must have added an error to `diags`. `read`
/// returning `None` without an error means the resource is gone.
#[async_trait]
pub trait Resource: Send + Sync {
    type State<'a>: Serialize + DeserializeOwned + Send;
    type PrivateState<'a>: Serialize + DeserializeOwned + Default + Send;
    type ProviderMetaState<'a>: Serialize + DeserializeOwned + Default + Send;

    fn schema(&self, diags: &mut Diagnostics) -> Option<Schema>;

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        let _ = (diags, config);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private: Self::PrivateState<'a>,
        meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)>;

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: Self::State<'a>,
        config: Self::State<'a>,
        meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)>;

    /// The planned state, its private state, and paths whose change replaces the resource
    /// (besides the attributes the schema marks `requires_replace`, which the server adds).
    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        proposed: Self::State<'a>,
        config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)>;

    async fn plan_destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        private: Self::PrivateState<'a>,
        meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        let _ = (diags, prior, meta);
        Some(private)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: Self::State<'a>,
        config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)>;

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        planned: Self::State<'a>,
        config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)>;

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private: Self::PrivateState<'a>,
        meta: Self::ProviderMetaState<'a>,
    ) -> Option<()>;

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let _ = id;
        diags.root_error(
            "Import is not supported",
            "This resource type cannot be imported; create it with Terraform instead.",
        );
        None
    }

    /// The resource's identity (Terraform 1.12+), if it has one. The server derives the
    /// identity from every state it returns, so a resource declares it and does nothing else.
    fn identity_schema(&self) -> Option<IdentitySchema> {
        None
    }

    /// Import named by an identity (`import { identity = { ... } }`). By default, an identity
    /// of one attribute imports as [`Resource::import`] with that value as the id; a resource
    /// whose identity has more attributes implements this.
    async fn import_identity<'a>(
        &self,
        diags: &mut Diagnostics,
        identity: Identity,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let schema = self.identity_schema();
        match schema.as_ref().map(|s| s.attributes.as_slice()) {
            Some([one]) => match identity.string(&one.name) {
                Some(id) => self.import(diags, id).await,
                None => {
                    diags.root_error(
                        "Identity incomplete",
                        format!("The import's identity needs `{}`.", one.name),
                    );
                    None
                }
            },
            _ => {
                diags.root_error(
                    "Import by identity is not supported",
                    "This resource type imports by id only: give the import block an `id`.",
                );
                None
            }
        }
    }

    /// The state for a resource of another type (or provider) that a `moved` block adopts
    /// (Terraform 1.8+). A resource that adopts nothing keeps the default, which refuses with
    /// a diagnostic naming the source.
    async fn move_state<'a>(
        &self,
        diags: &mut Diagnostics,
        source: MoveSource,
        target_type: &str,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        source.refuse(diags, target_type, &[]);
        None
    }
}

/// Encoded state and private state.
pub type Encoded = (Vec<u8>, Vec<u8>);

/// A resource as the server calls it: value trees in, MessagePack out.
#[async_trait]
pub trait DynamicResource: Send + Sync {
    fn schema(&self, diags: &mut Diagnostics) -> Option<Schema>;
    async fn validate(&self, diags: &mut Diagnostics, config: Tree) -> Option<()>;
    async fn read(
        &self,
        diags: &mut Diagnostics,
        state: Tree,
        private: Tree,
        meta: Tree,
    ) -> Option<Encoded>;
    async fn plan_create(
        &self,
        diags: &mut Diagnostics,
        proposed: Tree,
        config: Tree,
        meta: Tree,
    ) -> Option<Encoded>;
    async fn plan_update(
        &self,
        diags: &mut Diagnostics,
        prior: Tree,
        proposed: Tree,
        config: Tree,
        private: Tree,
        meta: Tree,
    ) -> Option<(Vec<u8>, Vec<u8>, Vec<AttributePath>)>;
    async fn plan_destroy(
        &self,
        diags: &mut Diagnostics,
        prior: Tree,
        private: Tree,
        meta: Tree,
    ) -> Option<Vec<u8>>;
    async fn create(
        &self,
        diags: &mut Diagnostics,
        planned: Tree,
        config: Tree,
        private: Tree,
        meta: Tree,
    ) -> Option<Encoded>;
    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        diags: &mut Diagnostics,
        prior: Tree,
        planned: Tree,
        config: Tree,
        private: Tree,
        meta: Tree,
    ) -> Option<Encoded>;
    async fn destroy(
        &self,
        diags: &mut Diagnostics,
        state: Tree,
        private: Tree,
        meta: Tree,
    ) -> Option<()>;
    async fn import(&self, diags: &mut Diagnostics, id: String) -> Option<Encoded>;
    fn identity_schema(&self) -> Option<IdentitySchema> {
        None
    }
    async fn import_identity(&self, diags: &mut Diagnostics, identity: Identity)
        -> Option<Encoded>;
    async fn move_state(
        &self,
        diags: &mut Diagnostics,
        source: MoveSource,
        target_type: &str,
    ) -> Option<Encoded>;
}

/// Types a tree; a value of the wrong shape becomes a diagnostic on its path.
pub(crate) fn decode<T: DeserializeOwned>(
    diags: &mut Diagnostics,
    tree: &Tree,
    what: &str,
) -> Option<T> {
    match codec::from_tree(tree) {
        Ok(v) => Some(v),
        Err(e) => {
            e.report(diags, what);
            None
        }
    }
}

/// Private state and provider meta: absent is the type's default.
fn decode_or_default<T: DeserializeOwned + Default>(
    diags: &mut Diagnostics,
    tree: &Tree,
    what: &str,
) -> Option<T> {
    if matches!(tree, Tree::Nil) {
        return Some(T::default());
    }
    decode(diags, tree, what)
}

pub(crate) fn encode<T: Serialize>(diags: &mut Diagnostics, value: &T) -> Option<Vec<u8>> {
    match codec::to_msgpack(value) {
        Ok(v) => Some(v),
        Err(e) => {
            diags.root_error(
                "Provider error: cannot encode a value",
                format!("{e}. This is a bug in the provider; please report it."),
            );
            None
        }
    }
}

fn encode_pair<S: Serialize, P: Serialize>(
    diags: &mut Diagnostics,
    (s, p): (S, P),
) -> Option<Encoded> {
    Some((encode(diags, &s)?, encode(diags, &p)?))
}

#[async_trait]
impl<T: Resource> DynamicResource for T {
    fn schema(&self, diags: &mut Diagnostics) -> Option<Schema> {
        Resource::schema(self, diags)
    }

    async fn validate(&self, diags: &mut Diagnostics, config: Tree) -> Option<()> {
        let config = decode(diags, &config, "the configuration")?;
        Resource::validate(self, diags, config).await
    }

    async fn read(
        &self,
        diags: &mut Diagnostics,
        state: Tree,
        private: Tree,
        meta: Tree,
    ) -> Option<Encoded> {
        let state = decode(diags, &state, "the state")?;
        let private = decode_or_default(diags, &private, "the private state")?;
        let meta = decode_or_default(diags, &meta, "provider_meta")?;
        let out = Resource::read(self, diags, state, private, meta).await?;
        encode_pair(diags, out)
    }

    async fn plan_create(
        &self,
        diags: &mut Diagnostics,
        proposed: Tree,
        config: Tree,
        meta: Tree,
    ) -> Option<Encoded> {
        let proposed = decode(diags, &proposed, "the proposed state")?;
        let config = decode(diags, &config, "the configuration")?;
        let meta = decode_or_default(diags, &meta, "provider_meta")?;
        let out = Resource::plan_create(self, diags, proposed, config, meta).await?;
        encode_pair(diags, out)
    }

    async fn plan_update(
        &self,
        diags: &mut Diagnostics,
        prior: Tree,
        proposed: Tree,
        config: Tree,
        private: Tree,
        meta: Tree,
    ) -> Option<(Vec<u8>, Vec<u8>, Vec<AttributePath>)> {
        let prior = decode(diags, &prior, "the prior state")?;
        let proposed = decode(diags, &proposed, "the proposed state")?;
        let config = decode(diags, &config, "the configuration")?;
        let private = decode_or_default(diags, &private, "the private state")?;
        let meta = decode_or_default(diags, &meta, "provider_meta")?;
        let (planned, private, replace) =
            Resource::plan_update(self, diags, prior, proposed, config, private, meta).await?;
        let (s, p) = encode_pair(diags, (planned, private))?;
        Some((s, p, replace))
    }

    async fn plan_destroy(
        &self,
        diags: &mut Diagnostics,
        prior: Tree,
        private: Tree,
        meta: Tree,
    ) -> Option<Vec<u8>> {
        let prior = decode(diags, &prior, "the prior state")?;
        let private = decode_or_default(diags, &private, "the private state")?;
        let meta = decode_or_default(diags, &meta, "provider_meta")?;
        let private = Resource::plan_destroy(self, diags, prior, private, meta).await?;
        encode(diags, &private)
    }

    async fn create(
        &self,
        diags: &mut Diagnostics,
        planned: Tree,
        config: Tree,
        private: Tree,
        meta: Tree,
    ) -> Option<Encoded> {
        let planned = decode(diags, &planned, "the planned state")?;
        let config = decode(diags, &config, "the configuration")?;
        let private = decode_or_default(diags, &private, "the private state")?;
        let meta = decode_or_default(diags, &meta, "provider_meta")?;
        let out = Resource::create(self, diags, planned, config, private, meta).await?;
        encode_pair(diags, out)
    }

    async fn update(
        &self,
        diags: &mut Diagnostics,
        prior: Tree,
        planned: Tree,
        config: Tree,
        private: Tree,
        meta: Tree,
    ) -> Option<Encoded> {
        let prior = decode(diags, &prior, "the prior state")?;
        let planned = decode(diags, &planned, "the planned state")?;
        let config = decode(diags, &config, "the configuration")?;
        let private = decode_or_default(diags, &private, "the private state")?;
        let meta = decode_or_default(diags, &meta, "provider_meta")?;
        let out = Resource::update(self, diags, prior, planned, config, private, meta).await?;
        encode_pair(diags, out)
    }

    async fn destroy(
        &self,
        diags: &mut Diagnostics,
        state: Tree,
        private: Tree,
        meta: Tree,
    ) -> Option<()> {
        let state = decode(diags, &state, "the state")?;
        let private = decode_or_default(diags, &private, "the private state")?;
        let meta = decode_or_default(diags, &meta, "provider_meta")?;
        Resource::destroy(self, diags, state, private, meta).await
    }

    async fn import(&self, diags: &mut Diagnostics, id: String) -> Option<Encoded> {
        let out = Resource::import(self, diags, id).await?;
        encode_pair(diags, out)
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Resource::identity_schema(self)
    }

    async fn import_identity(
        &self,
        diags: &mut Diagnostics,
        identity: Identity,
    ) -> Option<Encoded> {
        let out = Resource::import_identity(self, diags, identity).await?;
        encode_pair(diags, out)
    }

    async fn move_state(
        &self,
        diags: &mut Diagnostics,
        source: MoveSource,
        target_type: &str,
    ) -> Option<Encoded> {
        let out = Resource::move_state(self, diags, source, target_type).await?;
        encode_pair(diags, out)
    }
}

impl<T: Resource + 'static> From<T> for Box<dyn DynamicResource> {
    fn from(value: T) -> Self {
        Box::new(value)
    }
}
