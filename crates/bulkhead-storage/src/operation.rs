//! The one table of data operations: each operation's name (as the audit trail, the metrics and
//! tenant policies spell it), the least role that may perform it, and the words a refusal uses. The
//! server's RPCs, the query layer's audit events and a policy's deny list all name operations through
//! [`Operation`], so a name cannot mean one thing in one place and nothing in another: a policy that
//! names an unknown operation is refused when it is set, instead of denying nothing.

use crate::scope::Role;

/// A data operation on a tenant's collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Create a collection.
    CreateCollection,
    /// List the tenant's collections.
    ListCollections,
    /// Describe a collection (and how it is indexed).
    DescribeCollection,
    /// Drop a collection with its points.
    DropCollection,
    /// Insert or replace points.
    Upsert,
    /// Read one point.
    Get,
    /// Delete points.
    Delete,
    /// Count a collection's points.
    Count,
    /// Search (one query or a batch: each query is one search).
    Search,
    /// Export the tenant's own audit trail.
    ExportAudit,
    /// Issue an API key of the tenant (a tenant-admin's own key management).
    IssueApiKey,
    /// List the tenant's API keys.
    ListApiKeys,
    /// Revoke an API key of the tenant.
    RevokeApiKey,
    /// Resolve a document id to its opaque reference (a test hook of the query crate).
    PointRef,
}

impl Operation {
    /// Every operation, in the order of this table.
    pub const ALL: [Operation; 14] = [
        Operation::CreateCollection,
        Operation::ListCollections,
        Operation::DescribeCollection,
        Operation::DropCollection,
        Operation::Upsert,
        Operation::Get,
        Operation::Delete,
        Operation::Count,
        Operation::Search,
        Operation::ExportAudit,
        Operation::IssueApiKey,
        Operation::ListApiKeys,
        Operation::RevokeApiKey,
        Operation::PointRef,
    ];

    /// Its name in audit events, metrics and tenant policies.
    pub fn name(self) -> &'static str {
        match self {
            Operation::CreateCollection => "create-collection",
            Operation::ListCollections => "list-collections",
            Operation::DescribeCollection => "describe-collection",
            Operation::DropCollection => "drop-collection",
            Operation::Upsert => "upsert",
            Operation::Get => "get",
            Operation::Delete => "delete",
            Operation::Count => "count",
            Operation::Search => "search",
            Operation::ExportAudit => "export-audit",
            Operation::IssueApiKey => "issue-api-key",
            Operation::ListApiKeys => "list-api-keys",
            Operation::RevokeApiKey => "revoke-api-key",
            Operation::PointRef => "point-ref",
        }
    }

    /// The operation of that name, if there is one.
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The least role that may perform it.
    pub fn required_role(self) -> Role {
        match self {
            Operation::CreateCollection
            | Operation::DropCollection
            | Operation::ExportAudit
            | Operation::IssueApiKey
            | Operation::ListApiKeys
            | Operation::RevokeApiKey => Role::TenantAdmin,
            Operation::Upsert | Operation::Delete => Role::Writer,
            Operation::ListCollections
            | Operation::DescribeCollection
            | Operation::Get
            | Operation::Count
            | Operation::Search
            | Operation::PointRef => Role::Reader,
        }
    }

    /// What it does, for a refusal's message ("a reader key cannot <verb>").
    pub fn verb(self) -> &'static str {
        match self {
            Operation::CreateCollection => "create collections",
            Operation::ListCollections => "list collections",
            Operation::DescribeCollection => "describe collections",
            Operation::DropCollection => "drop collections",
            Operation::Upsert => "upsert points",
            Operation::Get => "read points",
            Operation::Delete => "delete points",
            Operation::Count => "count points",
            Operation::Search => "search",
            Operation::ExportAudit => "export the audit trail",
            Operation::IssueApiKey => "issue API keys",
            Operation::ListApiKeys => "list API keys",
            Operation::RevokeApiKey => "revoke API keys",
            Operation::PointRef => "resolve document ids",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Operation;

    #[test]
    fn names_are_unique_and_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
        }
        let mut names: Vec<_> = Operation::ALL.iter().map(|op| op.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Operation::ALL.len());
        assert_eq!(Operation::from_name("serch"), None);
    }
}
