"""The looks the training tabs share for the labels under their fields: a note (the yellow box that says
what will happen: a download, a design that does not fit the data) and an error (red text)."""

NOTE_STYLE = ("QLabel { background: #fff4ce; color: #5c4300; border: 1px solid #e0c36a; border-radius: 3px; "
              "padding: 4px; }")
ERROR_STYLE = "QLabel { color: #b00020; }"
