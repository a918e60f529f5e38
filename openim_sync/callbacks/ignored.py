"""Commands that are stored and answered with success but change nothing in the mirror."""

from openim_sync.models import Protocol

from .registry import ignore

OPENIM, TENCENT = Protocol.OPENIM, Protocol.TENCENT

BEFORE = "A 'before' callback: the change has not happened yet (the 'after' callback reports it)."

# OpenIM Server.

ignore(
    OPENIM,
    [
        "callbackBeforeUserRegisterCommand",
        "callbackBeforeUpdateUserInfoCommand",
        "callbackBeforeUpdateUserInfoExCommand",
        "callbackBeforeAddFriendCommand",
        "callbackBeforeAddFriendAgreeCommand",
        "callbackBeforeImportFriendsCommand",
        "callbackBeforeSetFriendRemarkCommand",
        "callbackBeforeSetFriendRemark",  # v3.6
        "callbackBeforeCreateGroupCommand",
        "callbackBeforeMembersJoinGroupCommand",
        "callbackBeforeMemberJoinGroupCommand",  # v2-v3.6
        "callbackBeforeJoinGroupCommand",
        "callbackBeforeInviteJoinGroupCommand",
        "callbackBeforeSetGroupInfoCommand",
        "callbackBeforeSetGroupInfoExCommand",
        "callbackBeforeSetGroupMemberInfoCommand",
        "CallbackBeforeSetGroupMemberInfoCommand",  # v2-v3.6 spelling
        "CallbackBeforeInviteJoinGroupCommand",  # early v3 spellings
        "CallbackBeforeSetGroupInfoCommand",
        "CallbackBeforeAddFriendAgreeCommand",
        "CallbackBeforeImportFriendsCommand",
    ],
    BEFORE,
)
ignore(
    OPENIM,
    ["callbackBeforeAddBlackCommand", "CallbackBeforeAddBlackCommand"],
    BEFORE + " OpenIM sends no callback after a user is blocked, so blocks are not mirrored.",
)
ignore(
    OPENIM,
    ["callbackAfterAddFriendCommand", "CallbackAfterAddFriendCommand"],
    "A friend request only; the friendship arrives as callbackAfterAddFriendAgreeCommand.",
)
ignore(
    OPENIM,
    [
        "callbackBeforeSendSingleMsgCommand",
        "callbackAfterSendSingleMsgCommand",
        "callbackBeforeSendGroupMsgCommand",
        "callbackAfterSendGroupMsgCommand",
        "callbackBeforeMsgModifyCommand",
        "callbackMsgModifyCommand",  # v2-v3.6
        "callbackWordFilterCommand",  # v2
        "callbackAfterMsgSaveDBCommand",
    ],
    "A message callback: messages are not mirrored.",
)
ignore(
    OPENIM,
    [
        "callbackAfterSingleMsgReadCommand",
        "callbackSingleMsgRead",  # v3.6
        "callbackAfterGroupMsgReadCommand",
        "callbackGroupMsgReadCommand",  # v3.0-3.6
    ],
    "A read receipt: read state is not mirrored.",
)
ignore(
    OPENIM,
    ["callbackBeforeAfterMsgCommand", "CallbackBeforeAfterMsgCommand"],
    "A message revoke (sic: the after-revoke callback's name): messages are not mirrored.",
)
ignore(
    OPENIM,
    [
        "callbackBeforeOfflinePushCommand",
        "callbackBeforeOnlinePushCommand",
        "callbackBeforeGroupOnlinePushCommand",
        "callbackOfflinePushCommand",  # v2-v3.6
        "callbackOnlinePushCommand",
        "callbackSuperGroupOnlinePushCommand",
    ],
    "A push callback: pushes are not mirrored.",
)
ignore(
    OPENIM,
    [
        "callbackBeforeSetMessageReactionExtensionCommand",  # v2-v3.x
        "callbackBeforeDeleteMessageReactionExtensionsCommand",
        "callbackGetMessageListReactionExtensionsCommand",
        "callbackAddMessageListReactionExtensionsCommand",
    ],
    "A message reaction callback: messages are not mirrored.",
)
ignore(
    OPENIM,
    [
        "callbackBeforeCreateSingleChatConversationsCommand",
        "callbackAfterCreateSingleChatConversationsCommand",
        "callbackBeforeCreateGroupChatConversationsCommand",
        "callbackAfterCreateGroupChatConversationsCommand",
    ],
    "A conversation callback: conversations are not mirrored.",
)

# Tencent Cloud Chat.

ignore(
    TENCENT,
    [
        "Sns.CallbackPrevFriendAdd",
        "Sns.CallbackPrevFriendResponse",
        "Group.CallbackBeforeCreateGroup",
        "Group.CallbackBeforeApplyJoinGroup",
        "Group.CallbackBeforeInviteJoinGroup",
    ],
    BEFORE + " Answered OK, so it never blocks the operation.",
)
ignore(
    TENCENT,
    [
        "C2C.CallbackBeforeSendMsg",
        "C2C.CallbackAfterSendMsg",
        "C2C.CallbackAfterMsgReport",
        "C2C.CallbackAfterMsgWithDraw",
        "Group.CallbackBeforeSendMsg",
        "Group.CallbackAfterSendMsg",
        "Group.CallbackAfterRecallMsg",
        "Group.CallbackAfterReadReceipt",
    ],
    "A message, read or recall callback: messages are not mirrored.",
)
ignore(
    TENCENT,
    ["Group.CallbackOnMemberStateChange"],
    "Audio-video group member presence: only per-user online state is mirrored.",
)
ignore(
    TENCENT,
    [
        "Group.CallbackAfterGroupFull",
        "Group.CallbackAfterGroupAttrChanged",
        "Group.CallbackAfterCreateTopic",
        "Group.CallbackAfterTopicDestroyed",
        "Group.CallbackAfterTopicInfoChanged",
    ],
    "Group attributes, topics and capacity are not mirrored.",
)
