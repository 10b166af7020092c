//! Tags on what SageMaker's control plane made (AddTags, ListTags, DeleteTags and the `Tags` of
//! each Create), kept per resource, `<kind>/<name>` as its ARN ends (`endpoint/iris-prod`,
//! `model-package/iris/3`), and forgotten with it.

use std::collections::BTreeMap;

use store::ResourceKind;

use super::hosting::invalid;
use super::{Result, Service};

/// A resource's tags, key to value.
pub type Tags = BTreeMap<String, String>;

/// SageMaker's limit of tags on one resource.
pub const MAX_TAGS: usize = 50;

/// Checks tags by SageMaker's rules: a key of 1 to 128 and a value of at most 256 letters,
/// digits, spaces and `_.:/=+-@`, no key starting `aws:` (AWS's own), no key twice.
pub fn checked(tags: &[(String, String)]) -> Result<Tags> {
    let allowed = |text: &str| text.chars().all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c));
    let mut checked = Tags::new();
    for (key, value) in tags {
        let shown = names::excerpt(key, 40);
        if key.is_empty() || key.chars().count() > 128 || !allowed(key) {
            return Err(invalid(format!("tag key '{shown}' must be 1 to 128 letters, digits, spaces and _.:/=+-@")));
        }
        if value.chars().count() > 256 || !allowed(value) {
            return Err(invalid(format!(
                "the value of tag '{shown}' must be at most 256 letters, digits, spaces and _.:/=+-@"
            )));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid(format!("tag key '{shown}' starts with aws:, which is reserved for AWS's own tags")));
        }
        if checked.insert(key.clone(), value.clone()).is_some() {
            return Err(invalid(format!("tag key '{shown}' is given twice")));
        }
    }
    if checked.len() > MAX_TAGS {
        return Err(invalid(format!("{} tags are more than the {MAX_TAGS} a resource may have", checked.len())));
    }
    Ok(checked)
}

impl Service {
    /// The tags of `resource` (`<kind>/<name>`); none when it has none.
    pub async fn tags(&self, resource: &str) -> Result<Tags> {
        match self.engine.store().resource(ResourceKind::Tags, resource).await? {
            Some(record) => serde_json::from_value(record.body.0)
                .map_err(|e| invalid(format!("the tags kept of {resource} do not read back: {e}"))),
            None => Ok(Tags::new()),
        }
    }

    /// Adds `tags` to those of `resource`, a key given again taking its new value; all of them.
    pub async fn add_tags(&self, resource: &str, tags: &Tags) -> Result<Tags> {
        let mut all = self.tags(resource).await?;
        all.extend(tags.clone());
        if all.len() > MAX_TAGS {
            return Err(invalid(format!("{resource} would have {} tags, more than the {MAX_TAGS} allowed", all.len())));
        }
        let body = serde_json::to_value(&all).map_err(|e| invalid(e.to_string()))?;
        let store = self.engine.store();
        if !store.update_resource(ResourceKind::Tags, resource, &body).await? {
            store.create_resource(ResourceKind::Tags, resource, &body).await?;
        }
        Ok(all)
    }

    /// Gives a resource just made exactly these tags: none left from an earlier one of its name.
    pub async fn set_tags(&self, resource: &str, tags: &Tags) -> Result<()> {
        self.forget_tags(resource).await?;
        if !tags.is_empty() {
            self.add_tags(resource, tags).await?;
        }
        Ok(())
    }

    /// Removes the tags with these keys from `resource`; a key it does not have is no error.
    pub async fn delete_tags(&self, resource: &str, keys: &[String]) -> Result<()> {
        let mut all = self.tags(resource).await?;
        all.retain(|key, _| !keys.contains(key));
        let body = serde_json::to_value(&all).map_err(|e| invalid(e.to_string()))?;
        self.engine.store().update_resource(ResourceKind::Tags, resource, &body).await?;
        Ok(())
    }

    /// Forgets every tag of `resource`, when the resource itself goes.
    pub(crate) async fn forget_tags(&self, resource: &str) -> Result<()> {
        self.engine.store().delete_resource(ResourceKind::Tags, resource).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> (String, String) {
        (key.to_owned(), value.to_owned())
    }

    #[test]
    fn tags_follow_sagemakers_rules() {
        let fine = checked(&[tag("team", "ml ops"), tag("cost-center", "42"), tag("a:b/c=d+e@f", "")]).unwrap();
        assert_eq!(fine.len(), 3);
        for bad in [
            vec![tag("", "x")],
            vec![tag(&"k".repeat(129), "x")],
            vec![tag("k", &"v".repeat(257))],
            vec![tag("aws:owner", "x")],
            vec![tag("semi;colon", "x")],
            vec![tag("twice", "1"), tag("twice", "2")],
            (0..51).map(|i| tag(&format!("k{i}"), "v")).collect(),
        ] {
            assert!(checked(&bad).is_err(), "{bad:?}");
        }
    }
}
