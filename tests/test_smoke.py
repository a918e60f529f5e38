from openim_sync.models import ImUser
from tests.helpers import post_openim, seed


def test_update_user_info_path_shape(client, db):
    response = post_openim(
        client, "/callbackAfterUpdateUserInfoCommand", seed("callbackAfterUpdateUserInfoCommand")
    )
    assert response.status_code == 200
    assert response.json() == {
        "actionCode": 0,
        "errCode": 0,
        "errMsg": "",
        "errDlt": "",
        "nextCode": 0,
    }
    assert ImUser.objects.get(user_id="user123").nickname == "John Doe"
