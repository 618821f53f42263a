//! `GET /{version}/{waba_id}/message_templates`: the business account's templates as Meta knows them,
//! a page at a time (the registry's sync).

use serde::Deserialize;
use serde_json::Value;

use super::{parse_error, read_capped, transport_error, GraphClient, GraphError};

/// Templates per page asked for: Meta allows more, but components make each one large.
pub const TEMPLATES_PER_PAGE: u32 = 50;

/// The most of one page we read: 50 templates with their components stay far below it.
pub const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// One template of a listing, as far as the registry needs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListedTemplate {
    pub name: String,
    pub language: String,
    pub status: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub quality_score: Option<QualityScore>,
    /// Absent when the listing was not asked for them; then the registry's shape is left as it is.
    #[serde(default)]
    pub components: Option<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QualityScore {
    #[serde(default)]
    pub score: Option<String>,
}

/// One page, and the cursor of the next when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatePage {
    pub templates: Vec<ListedTemplate>,
    /// Templates on the page that did not read as one (kept out; counted).
    pub unreadable: usize,
    /// Whether Meta says a next page exists (`paging.next`).
    pub more: bool,
    /// The cursor to ask for it with (`paging.cursors.after`).
    pub after: Option<String>,
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    data: Vec<Value>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    /// Present only when there is a next page. We follow its cursor, never the URL itself: the
    /// token goes only to the configured base URL.
    #[serde(default)]
    next: Option<Value>,
}

#[derive(Deserialize)]
struct Cursors {
    #[serde(default)]
    after: Option<String>,
}

impl GraphClient {
    /// `{base}/{version}/{id}[/{tail}]` for a Graph node (an account, a media id), each part a path
    /// segment, escaped: an odd id cannot reach another path or the query.
    pub(super) fn node_url(
        &self,
        waba_id: &str,
        tail: Option<&str>,
    ) -> Result<reqwest::Url, GraphError> {
        let mut url = reqwest::Url::parse(&format!(
            "{}/{}/",
            self.config.base_url.trim_end_matches('/'),
            self.config.api_version,
        ))
        .map_err(|e| GraphError::Unknown(format!("not a URL: {e}")))?;
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| GraphError::Unknown("the base URL cannot take a path".into()))?;
            path.pop_if_empty().push(waba_id);
            if let Some(t) = tail {
                path.push(t);
            }
        }
        Ok(url)
    }

    /// A bearer GET, its answer read in chunks up to [`MAX_PAGE_BYTES`] (`what` names it in the
    /// error): a huge answer is not Meta's, and must not cost the memory.
    pub(super) async fn get_capped(
        &self,
        url: reqwest::Url,
        what: &str,
    ) -> Result<(u16, Vec<u8>), GraphError> {
        let token = self.bearer();
        let response = self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let bytes = read_capped(response, MAX_PAGE_BYTES, what).await?;
        Ok((status, bytes))
    }

    /// One page of the account's templates, after `after` (the previous page's cursor).
    pub async fn template_page(
        &self,
        waba_id: &str,
        after: Option<&str>,
    ) -> Result<TemplatePage, GraphError> {
        let mut url = self.node_url(waba_id, Some("message_templates"))?;
        url.query_pairs_mut()
            .append_pair(
                "fields",
                "name,language,status,category,quality_score,components",
            )
            .append_pair("limit", &TEMPLATES_PER_PAGE.to_string());
        if let Some(cursor) = after {
            url.query_pairs_mut().append_pair("after", cursor);
        }
        let (status, bytes) = self.get_capped(url, "a template page").await?;
        if !(200..300).contains(&status) {
            return Err(GraphError::Meta(parse_error(status, &bytes)));
        }
        let listing: Listing = serde_json::from_slice(&bytes).map_err(|e| {
            GraphError::Unknown(format!("HTTP {status}, but not a template listing: {e}"))
        })?;
        let mut templates = Vec::new();
        let mut unreadable = 0;
        for item in listing.data {
            match serde_json::from_value::<ListedTemplate>(item) {
                Ok(t) => templates.push(t),
                Err(_) => unreadable += 1,
            }
        }
        let more = listing.paging.as_ref().is_some_and(|p| p.next.is_some());
        let after = listing.paging.and_then(|p| p.cursors).and_then(|c| c.after);
        Ok(TemplatePage {
            templates,
            unreadable,
            more,
            after,
        })
    }
}

#[derive(Deserialize)]
struct Onboarding {
    #[serde(default)]
    marketing_messages_onboarding_status: Option<Value>,
}

impl GraphClient {
    /// `GET /{version}/{waba_id}?fields=marketing_messages_onboarding_status`: the account's
    /// Marketing Messages API onboarding word, when Meta gives one.
    pub async fn marketing_onboarding(&self, waba_id: &str) -> Result<Option<String>, GraphError> {
        let mut url = self.node_url(waba_id, None)?;
        url.query_pairs_mut()
            .append_pair("fields", "marketing_messages_onboarding_status");
        let (status, bytes) = self.get_capped(url, "an account answer").await?;
        if !(200..300).contains(&status) {
            return Err(GraphError::Meta(parse_error(status, &bytes)));
        }
        let o: Onboarding = serde_json::from_slice(&bytes)
            .map_err(|e| GraphError::Unknown(format!("HTTP {status}, but not an account: {e}")))?;
        // A word, or an object with one (`{"status": "ONBOARDED"}`): Meta's shape is not pinned down.
        Ok(match o.marketing_messages_onboarding_status {
            Some(Value::String(w)) => Some(w),
            Some(Value::Object(m)) => m.get("status").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }
        .filter(|w| !w.is_empty() && w.len() <= 64))
    }
}
