//! The DynamoDB tables, defined once. Tests create tables from these definitions, the local stack does
//! too, and the IaC check compares `infra/template.yaml` against them.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

/// A key attribute and its DynamoDB type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttr {
    pub name: &'static str,
    pub kind: AttrKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    S,
    N,
}

impl AttrKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrKind::S => "S",
            AttrKind::N => "N",
        }
    }

    fn scalar(self) -> ScalarAttributeType {
        match self {
            AttrKind::S => ScalarAttributeType::S,
            AttrKind::N => ScalarAttributeType::N,
        }
    }
}

/// A global secondary index (all attributes projected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDef {
    pub name: &'static str,
    pub partition_key: KeyAttr,
    pub sort_key: Option<KeyAttr>,
}

/// One table: its keys, indexes, TTL attribute, and the env var that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    /// The logical name used in docs and IaC (`contacts`, `messages`, `events`).
    pub logical: &'static str,
    /// The env var the functions read the physical name from.
    pub env_var: &'static str,
    pub partition_key: KeyAttr,
    pub sort_key: Option<KeyAttr>,
    pub indexes: &'static [IndexDef],
    pub ttl_attribute: Option<&'static str>,
}

/// One item per person per business number, plus alias items (phone → BSUID key). No TTL: an opt-out
/// must outlive any retention period.
pub const CONTACTS: TableDef = TableDef {
    logical: "contacts",
    env_var: "WAHOOK_CONTACTS_TABLE",
    partition_key: KeyAttr {
        name: "contact",
        kind: AttrKind::S,
    },
    sort_key: None,
    indexes: &[],
    ttl_attribute: None,
};

/// The `by_contact` index of the messages table: a contact's timeline.
pub const MESSAGES_BY_CONTACT: IndexDef = IndexDef {
    name: "by_contact",
    partition_key: KeyAttr {
        name: "contact",
        kind: AttrKind::S,
    },
    sort_key: Some(KeyAttr {
        name: "at",
        kind: AttrKind::N,
    }),
};

/// The `by_idempotency_key` index of the messages table (sparse: outbound messages only). The sender
/// reads it to learn whether a send whose answer was lost reached Meta after all.
pub const MESSAGES_BY_IDEMPOTENCY_KEY: IndexDef = IndexDef {
    name: "by_idempotency_key",
    partition_key: KeyAttr {
        name: "idempotency_key",
        kind: AttrKind::S,
    },
    sort_key: None,
};

/// One item per message, in or out, keyed by Meta's wamid: the dedupe key of inbound messages and the
/// join key of statuses whichever arrives first.
pub const MESSAGES: TableDef = TableDef {
    logical: "messages",
    env_var: "WAHOOK_MESSAGES_TABLE",
    partition_key: KeyAttr {
        name: "wamid",
        kind: AttrKind::S,
    },
    sort_key: None,
    indexes: &[MESSAGES_BY_CONTACT, MESSAGES_BY_IDEMPOTENCY_KEY],
    ttl_attribute: Some("expires_at"),
};

/// The send ledger: one item per producer idempotency key, claimed before Meta is called.
pub const SENDS: TableDef = TableDef {
    logical: "sends",
    env_var: "WAHOOK_SENDS_TABLE",
    partition_key: KeyAttr {
        name: "idempotency_key",
        kind: AttrKind::S,
    },
    sort_key: None,
    indexes: &[],
    ttl_attribute: Some("expires_at"),
};

/// Everything authentic that is not a message or a status: other webhook fields, `value.errors`, and
/// payloads (or parts) we could not parse, kept raw. Keyed by a hash of the raw bytes.
pub const EVENTS: TableDef = TableDef {
    logical: "events",
    env_var: "WAHOOK_EVENTS_TABLE",
    partition_key: KeyAttr {
        name: "event_id",
        kind: AttrKind::S,
    },
    sort_key: None,
    indexes: &[],
    ttl_attribute: Some("expires_at"),
};

/// The template registry: one item per business account, template name and language
/// (`{waba_id}#{name}#{language}`), fed by Meta's template webhooks. No TTL: a template lives until
/// Meta says it is gone.
pub const TEMPLATES: TableDef = TableDef {
    logical: "templates",
    env_var: "WAHOOK_TEMPLATES_TABLE",
    partition_key: KeyAttr {
        name: "template",
        kind: AttrKind::S,
    },
    sort_key: None,
    indexes: &[],
    ttl_attribute: None,
};

/// Every table, in the order they are created.
/// Figures per day, template, language and category (`day`, `row`), and one marker item per fact
/// counted (`fact#{id}`, `-`), so a fact seen again adds nothing. Markers expire with the retention
/// period; rows have no TTL.
pub const FIGURES: TableDef = TableDef {
    logical: "figures",
    env_var: "WAHOOK_FIGURES_TABLE",
    partition_key: KeyAttr {
        name: "day",
        kind: AttrKind::S,
    },
    sort_key: Some(KeyAttr {
        name: "row",
        kind: AttrKind::S,
    }),
    indexes: &[],
    ttl_attribute: Some("expires_at"),
};

pub const ALL_TABLES: [TableDef; 6] = [CONTACTS, MESSAGES, EVENTS, SENDS, TEMPLATES, FIGURES];

/// The tables whose writes are events (their streams feed the publisher). Not the figures: they are
/// the publisher's own output.
pub const STREAMED_TABLES: [TableDef; 5] = [CONTACTS, MESSAGES, EVENTS, SENDS, TEMPLATES];

/// The physical names of the tables, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub contacts: String,
    pub messages: String,
    pub events: String,
    pub sends: String,
    pub templates: String,
    pub figures: String,
}

impl TableNames {
    /// `{prefix}-contacts`, `{prefix}-messages`, `{prefix}-events`, `{prefix}-sends`,
    /// `{prefix}-templates`, `{prefix}-figures`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            contacts: format!("{prefix}-{}", CONTACTS.logical),
            messages: format!("{prefix}-{}", MESSAGES.logical),
            events: format!("{prefix}-{}", EVENTS.logical),
            sends: format!("{prefix}-{}", SENDS.logical),
            templates: format!("{prefix}-{}", TEMPLATES.logical),
            figures: format!("{prefix}-{}", FIGURES.logical),
        }
    }

    pub fn name_of(&self, def: &TableDef) -> &str {
        match def.logical {
            "contacts" => &self.contacts,
            "messages" => &self.messages,
            "events" => &self.events,
            "sends" => &self.sends,
            "templates" => &self.templates,
            "figures" => &self.figures,
            other => unreachable!("no table {other} in TableNames"),
        }
    }
}

fn key_schema(pk: KeyAttr, sk: Option<KeyAttr>) -> Vec<KeySchemaElement> {
    std::iter::once((pk, KeyType::Hash))
        .chain(sk.map(|k| (k, KeyType::Range)))
        .map(|(k, t)| {
            KeySchemaElement::builder()
                .attribute_name(k.name)
                .key_type(t)
                .build()
                .expect("name and type are set")
        })
        .collect()
}

/// Creates `def` as `name` (on-demand billing) and turns on its TTL. For tests and the local stack;
/// in AWS the IaC template creates the tables.
pub async fn create_table(
    client: &Client,
    def: &TableDef,
    name: &str,
) -> Result<(), aws_sdk_dynamodb::Error> {
    create_table_with(client, def, name, Streams::Off).await
}

/// Whether a table created here has its stream (`NEW_AND_OLD_IMAGES`, what the publisher reads).
///
/// Off in most tests: moto keeps every stream record forever and copies the stream with the table
/// on every transaction, so streams cost the emulator time that only the event tests and the local
/// stack need. In AWS every table has one (`infra/template.yaml`). Set at creation only: moto fails
/// every write to a table whose stream was turned off afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    Off,
    NewAndOldImages,
}

/// [`create_table`], with or without the table's stream.
pub async fn create_table_with(
    client: &Client,
    def: &TableDef,
    name: &str,
    streams: Streams,
) -> Result<(), aws_sdk_dynamodb::Error> {
    let mut attrs: Vec<KeyAttr> = Vec::new();
    let mut add = |k: KeyAttr| {
        if !attrs.iter().any(|a| a.name == k.name) {
            attrs.push(k);
        }
    };
    add(def.partition_key);
    def.sort_key.into_iter().for_each(&mut add);
    for idx in def.indexes {
        add(idx.partition_key);
        idx.sort_key.into_iter().for_each(&mut add);
    }

    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(def.partition_key, def.sort_key)));
    if streams == Streams::NewAndOldImages {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("enabled is set"),
        );
    }
    for a in attrs {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a.name)
                .attribute_type(a.kind.scalar())
                .build()
                .expect("name and type are set"),
        );
    }
    for idx in def.indexes {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(idx.name)
                .set_key_schema(Some(key_schema(idx.partition_key, idx.sort_key)))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("name, keys and projection are set"),
        );
    }
    req.send().await?;

    if let Some(ttl) = def.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(ttl)
                    .build()
                    .expect("enabled and attribute are set"),
            )
            .send()
            .await?;
    }
    Ok(())
}

/// Creates every table under `names`.
pub async fn create_all_tables(
    client: &Client,
    names: &TableNames,
) -> Result<(), aws_sdk_dynamodb::Error> {
    create_all_tables_with(client, names, Streams::Off).await
}

/// [`create_all_tables`], with or without the streams of [`STREAMED_TABLES`].
pub async fn create_all_tables_with(
    client: &Client,
    names: &TableNames,
    streams: Streams,
) -> Result<(), aws_sdk_dynamodb::Error> {
    for def in &ALL_TABLES {
        // The figures are the publisher's output, not an event source.
        let streams = if STREAMED_TABLES.contains(def) {
            streams
        } else {
            Streams::Off
        };
        create_table_with(client, def, names.name_of(def), streams).await?;
    }
    Ok(())
}
