//! The REST API's endpoints and JSON bodies, shared by the client and the emulator.

use crate::model::AttributeSet;
use serde::{Deserialize, Serialize};

/// A REST API operation grattr calls (a command of the API, under the base URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Replace all of a group's attributes.
    SetGroupAttr,
    /// Read a group's attributes.
    GetGroupAttr,
    /// Upsert some keys.
    ModifyGroupAttr,
    /// Remove all attributes.
    ClearGroupAttr,
    /// Remove some keys.
    DeleteGroupAttr,
    /// Create a group.
    CreateGroup,
    /// Destroy a group.
    DestroyGroup,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 7] = [
        Operation::SetGroupAttr,
        Operation::GetGroupAttr,
        Operation::ModifyGroupAttr,
        Operation::ClearGroupAttr,
        Operation::DeleteGroupAttr,
        Operation::CreateGroup,
        Operation::DestroyGroup,
    ];

    /// The path below the base URL. Note that get lives under another service.
    pub fn path(self) -> &'static str {
        match self {
            Operation::SetGroupAttr => "v4/group_open_http_svc/set_group_attr",
            Operation::GetGroupAttr => "v4/group_open_attr_http_svc/get_group_attr",
            Operation::ModifyGroupAttr => "v4/group_open_http_svc/modify_group_attr",
            Operation::ClearGroupAttr => "v4/group_open_http_svc/clear_group_attr",
            Operation::DeleteGroupAttr => "v4/group_open_http_svc/delete_group_attr",
            Operation::CreateGroup => "v4/group_open_http_svc/create_group",
            Operation::DestroyGroup => "v4/group_open_http_svc/destroy_group",
        }
    }

    /// The command name, as in logs and statistics.
    pub fn name(self) -> &'static str {
        self.path().rsplit('/').next().unwrap_or_default()
    }

    /// Whether the call writes a group's attributes (and counts against its 5 writes/s).
    pub fn writes_attributes(self) -> bool {
        matches!(
            self,
            Operation::SetGroupAttr
                | Operation::ModifyGroupAttr
                | Operation::ClearGroupAttr
                | Operation::DeleteGroupAttr
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One attribute in a body: `{"key": …, "value": …}` (no value when deleting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrItem {
    /// The key.
    pub key: String,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Attribute items for a body, in key order.
pub fn items(attributes: &AttributeSet) -> Vec<AttrItem> {
    attributes.iter().map(|(key, value)| AttrItem { key: key.to_owned(), value: Some(value.to_owned()) }).collect()
}

/// The envelope of every answer, with the fields of the endpoints grattr reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    /// `OK` or `FAIL`.
    pub action_status: String,
    /// 0 on success.
    pub error_code: u32,
    /// A description of the error.
    #[serde(default)]
    pub error_info: String,
    /// The attributes (get); absent when a group has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_attr_ary: Option<Vec<AttrItem>>,
    /// The id of a created group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
}

impl Response {
    /// A successful answer.
    pub fn ok() -> Response {
        Response { action_status: "OK".into(), ..Response::default() }
    }

    /// A failed answer.
    pub fn fail(code: u32, info: impl Into<String>) -> Response {
        Response { action_status: "FAIL".into(), error_code: code, error_info: info.into(), ..Response::default() }
    }

    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        self.error_code == 0 && self.action_status == "OK"
    }
}

/// The kinds of group `create_group` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GroupType {
    /// A public group.
    Public,
    /// A private (work) group.
    Private,
    /// A meeting group.
    ChatRoom,
    /// A live-stream room.
    AVChatRoom,
    /// A community.
    Community,
}

impl GroupType {
    /// The type to give a group known only by its id: Community ids start with `@TGS#_`.
    pub fn implied_by(id: &crate::model::GroupId) -> GroupType {
        if id.as_str().starts_with("@TGS#_") { GroupType::Community } else { GroupType::Public }
    }
}

impl std::str::FromStr for GroupType {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "Public" => Ok(GroupType::Public),
            "Private" | "Work" => Ok(GroupType::Private),
            "ChatRoom" | "Meeting" => Ok(GroupType::ChatRoom),
            "AVChatRoom" => Ok(GroupType::AVChatRoom),
            "Community" => Ok(GroupType::Community),
            other => Err(format!("unknown group type {other:?} (Public, Private, ChatRoom, AVChatRoom, Community)")),
        }
    }
}
